# The image's locales: C.UTF-8 and en_US.UTF-8 instead of glibc's few hundred megabytes of all
# of them. default.nix points LOCALE_ARCHIVE at this archive, and toolkit.nix gives it to Home
# Manager as i18n.glibcLocales, whose LOCALE_ARCHIVE_2_27 would otherwise name (and pull into
# the image) the full glibcLocales.
{ glibcLocales }:
glibcLocales.override {
  allLocales = false;
  locales = [
    "C.UTF-8/UTF-8"
    "en_US.UTF-8/UTF-8"
  ];
}
