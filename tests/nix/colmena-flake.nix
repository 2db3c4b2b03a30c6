# Stands in for how colmena finds a flake's hive, at the two versions a fleet may run: 0.4.0
# (nixpkgs' colmena at the pin, the default of services.devbox.fleet.packages) and 0.5 (its
# main branch). colmena cannot be installed here; each rule below is its source's, read at:
#
# - 0.4.0, zhaofengli/colmena tag v0.4.0 (5fdd743): src/nix/hive/flake.nix, `processFlake`:
#   `if hive.outputs ? colmenaHive then checkPreparedHive hive.outputs.colmenaHive else
#   evalHive hive`, where checkPreparedHive requires `__schema` ("… does not contain a valid
#   evaluated hive") equal to "v0" ("The colmenaHive output (schema …) isn't compatible with
#   this version of Colmena."); src/nix/hive/eval.nix l.23 `flakeToHive`: "Flake must define
#   outputs.colmena.", and l.48–51: a raw hive that has `__schema` is refused ("Use the
#   `colmenaHive` output instead of `colmena`").
# - 0.5, main (zhaofengli 5bf4ce6, nix-community 1ebe1b5): src/nix/hive/mod.rs, a flake is
#   evaluated directly (`EvaluationMethod::DirectFlakeEval`) as `nix eval <flake>#colmenaHive
#   --apply …`, whose snippet asserts `__schema == "v0.5"` (HIVE_SCHEMA) with the same message;
#   Nix looks the installable up as packages.<system>.colmenaHive, then
#   legacyPackages.<system>.colmenaHive, then colmenaHive ("flake … does not provide attribute
#   …"). A plain `colmena` output is read only with the hidden --legacy-flake-eval.
#
# `makeHive.<version>` stands for that version's colmena.lib.makeHive: an evaluated hive with
# the version's schema (its nodes are evaluated as eval.nix does by eval-fleet-hive.nix).
# Each reader gives { hive = the raw hive it deploys; } or { error = colmena's message; }.
{ system ? "x86_64-linux" }:
let
  schema = hive: hive.__schema or null;
  incompatible =
    hive:
    "The colmenaHive output (schema ${toString (schema hive)}) isn't compatible with this version of Colmena.";
in
{
  makeHive = {
    "0.4.0" = rawHive: {
      __schema = "v0";
      inherit rawHive;
    };
    "0.5" = rawHive: {
      __schema = "v0.5";
      inherit rawHive;
    };
  };

  read = {
    "0.4.0" =
      outputs:
      if outputs ? colmenaHive then
        if schema outputs.colmenaHive == null then
          { error = "The colmenaHive output does not contain a valid evaluated hive."; }
        else if schema outputs.colmenaHive != "v0" then
          { error = incompatible outputs.colmenaHive; }
        else
          { hive = outputs.colmenaHive.rawHive; }
      else if !(outputs ? colmena) then
        { error = "Flake must define outputs.colmena."; }
      else if outputs.colmena ? __schema then
        { error = "You cannot pass in an already-evaluated Hive into the evaluator."; }
      else
        { hive = outputs.colmena; };

    "0.5" =
      outputs:
      let
        found =
          outputs.packages.${system}.colmenaHive or outputs.legacyPackages.${system}.colmenaHive
            or outputs.colmenaHive or null;
      in
      if found == null then
        {
          error = "flake does not provide attribute 'packages.${system}.colmenaHive', 'legacyPackages.${system}.colmenaHive' or 'colmenaHive'";
        }
      else if schema found != "v0.5" then
        { error = incompatible found; }
      else
        { hive = found.rawHive; };
  };
}
