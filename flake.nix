{
  description = "qtap DevTools: Chrome DevTools' Network panel for a Linux server, fed by eBPF";

  # Thin: the work is in nixos/ (package, module, image, session) and vm-tests/ (VM tests).
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    # A pinned nightly with rust-src for the eBPF object (build-std for bpfel-unknown-none)
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      rust-overlay,
    }:
    let
      system = "x86_64-linux";
      pkgs = import nixpkgs {
        inherit system;
        overlays = [ rust-overlay.overlays.default ];
      };
      qtap = pkgs.callPackage ./nixos/package.nix { };
      module = self.nixosModules.default;
    in
    {
      packages.${system} = {
        default = qtap;
        inherit qtap;
        oci = pkgs.callPackage ./nixos/oci.nix { inherit qtap; };
      };

      apps.${system}.default = {
        type = "app";
        program = nixpkgs.lib.getExe (pkgs.callPackage ./nixos/session.nix { inherit qtap; });
        meta.description = "A one-off qtap DevTools session (needs root)";
      };

      # The module, with the package of this flake as services.qtap.devTools.package.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nixos/module.nix ];
          services.qtap.devTools.package =
            lib.mkDefault
              self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      overlays.default = final: prev: {
        qtap-devtools = self.packages.${prev.stdenv.hostPlatform.system}.default;
      };

      checks.${system} = {
        package = qtap;
        oci = self.packages.${system}.oci;
        module = pkgs.callPackage ./nixos/module-check.nix {
          inherit module;
          inherit (nixpkgs.lib) nixosSystem;
        };
        vm-devtools = import ./vm-tests/nixos-devtools.nix { inherit pkgs module; };
      };
    };
}
