# Development shell: `nix-shell` (from the repo root), then use the
# README's quick-start commands (`uv` builds the locked `.venv`).
{ pkgs ? import <nixpkgs> { } }:

pkgs.mkShell {
  packages = [
    pkgs.python314
    pkgs.uv
  ];

  shellHook = ''
    # use nix's interpreter, never a uv-downloaded one
    export UV_PYTHON=${pkgs.python314}/bin/python3.14
    export UV_PYTHON_DOWNLOADS=never
    export UV_COMPILE_BYTECODE=1
  '';
}
