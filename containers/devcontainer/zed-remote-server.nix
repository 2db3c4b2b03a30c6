# The Zed remote server the image offers to Zed clients, in bin/ under the
# name they look for: zed-remote-server-stable-<version>+stable.
#
# A client uses a server only when the version is exactly its own (otherwise
# it uploads its own into ~/.zed_server). By default this is the
# `remote_server` output of nixpkgs' zed-editor, built from the same source
# as the editor of the pinned nixpkgs. zed-remote-server.json can pin another
# version instead, to match the clients a team actually runs: then it is
# Zed's own release build of the server, the file Zed clients download
# themselves, fetched by version and hash. (Overriding zed-editor's version
# would also need a new cargo hash, which nix-prefetch-url cannot compute.)
{
  lib,
  stdenv,
  fetchurl,
  autoPatchelfHook,
  zed-editor,
  pin ? lib.importJSON ./zed-remote-server.json,
}:
if pin.version == null then
  zed-editor.remote_server
else
  stdenv.mkDerivation {
    pname = "zed-remote-server";
    inherit (pin) version;

    src = fetchurl {
      url = "https://github.com/zed-industries/zed/releases/download/v${pin.version}/zed-remote-server-linux-x86_64.gz";
      inherit (pin) sha256;
    };

    dontUnpack = true;
    # Zed ships the server to arbitrary Linux hosts, so it needs at most the C
    # runtime; the hook points a dynamically linked build at nixpkgs' one.
    nativeBuildInputs = [ autoPatchelfHook ];
    buildInputs = [ (lib.getLib stdenv.cc.cc) ];

    # install-zed-remote-server.sh: the server under the name clients look for,
    # zed-remote-server-stable-<version>+stable.
    installPhase = ''
      runHook preInstall
      bash ${./install-zed-remote-server.sh} "$src" ${lib.escapeShellArg pin.version} "$out/bin"
      runHook postInstall
    '';

    meta = {
      description = "Zed's remote server ${pin.version}, pinned for the devbox image";
      homepage = "https://zed.dev";
      license = lib.licenses.gpl3Only;
      # The pin's hash is of the x86_64 release file (update-zed-pin.sh).
      platforms = [ "x86_64-linux" ];
    };
  }
