"""The declaration: users.nix and containers.json in, the generated tree out.

The pipeline, in the order data flows: load → validate (models, schema_errors) → resolve →
render (unitfile, manifest) → the tree on disk (write). `pipeline` is its entry point for the
generator's commands (generate, check, plan); `edit` is the one way a runtime verb changes
containers.json, re-running the same pipeline; `plan` compares two resolved declarations.
"""
