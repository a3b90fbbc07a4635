# The `qtap` binary with its eBPF object, and the systemd units from systemd/.
#
# daemon/build.rs drives aya-build, which runs a nested `cargo build -Z build-std=core
# --target bpfel-unknown-none` for daemon-ebpf. Without rustup (as here) it uses the cargo
# and rustc on PATH, so the whole build uses one pinned nightly (rust-overlay) with
# rust-src, and nixpkgs' bpf-linker links the kernel object.
{
  lib,
  rust-bin,
  makeRustPlatform,
  bpf-linker,
  # javac and jar for the Java agent embedded in the binary (daemon/build.rs, docs/java.md)
  jdk17_headless,
  # A nightly whose LLVM major is the one nixpkgs' bpf-linker is built against: bpf-linker
  # reads the bitcode rustc emits, and LLVM cannot read bitcode from a newer major.
  # 2025-11-01 is rustc 1.93.0-nightly on LLVM 21 (Cargo.lock needs rustc >= 1.91).
  nightlyDate ? "2025-11-01",
  nightlyLlvmMajor ? "21",
}:
let
  toolchain = rust-bin.nightly.${nightlyDate}.minimal.override {
    extensions = [ "rust-src" ];
  };
  rustPlatform = makeRustPlatform {
    cargo = toolchain;
    rustc = toolchain;
  };

  # bpf-linker's LLVM, read from its build inputs (no import-from-derivation).
  linkerLlvm = lib.findFirst (p: (p.pname or "") == "llvm" || lib.hasPrefix "llvm-" (p.name or "")) null (
    (bpf-linker.nativeBuildInputs or [ ]) ++ (bpf-linker.buildInputs or [ ])
  );
  linkerLlvmMajor = if linkerLlvm == null then null else lib.versions.major linkerLlvm.version;

  # `-Z build-std=core` resolves the standard library's own Cargo.lock (in rust-src)
  # against the same vendored sources as the workspace, so its crates are vendored too and
  # added to the vendor directory before the build (see preBuild). Reading that lock file
  # from the toolchain is import-from-derivation (allowed by default).
  stdVendor = rustPlatform.importCargoLock {
    lockFile = "${toolchain}/lib/rustlib/src/rust/library/Cargo.lock";
  };

  cargoToml = lib.importTOML ../Cargo.toml;
in
assert lib.assertMsg (linkerLlvmMajor == null || linkerLlvmMajor == nightlyLlvmMajor) ''
  qtap: nixpkgs' bpf-linker is built against LLVM ${toString linkerLlvmMajor}, but the pinned
  nightly (${nightlyDate}) emits LLVM ${nightlyLlvmMajor} bitcode. Pick a nightlyDate whose
  rustc uses LLVM ${toString linkerLlvmMajor} (`rustc -vV` shows it), and set nightlyLlvmMajor.
'';
rustPlatform.buildRustPackage {
  pname = "qtap";
  inherit (cargoToml.workspace.package) version;
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../daemon
      ../daemon-common
      ../daemon-ebpf
      ../ui
      ../systemd
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [
    bpf-linker
    jdk17_headless
  ];

  # No rustup in the sandbox: aya-build uses the nightly on PATH for the eBPF crate; this
  # names the toolchain for builds that do have rustup (daemon/build.rs honours it).
  env.QTAP_EBPF_TOOLCHAIN = "nightly-${nightlyDate}";

  cargoBuildFlags = [
    "--package"
    "qtap"
  ];
  # Unit tests only: the integration tests load eBPF programs into the running kernel and
  # need root; the NixOS VM tests (checks) and vm-tests/ run them for real.
  cargoTestFlags = [
    "--package"
    "qtap"
    "--lib"
  ];

  preBuild = ''
    vendor="$NIX_BUILD_TOP/cargo-vendor-dir"
    if [ ! -d "$vendor" ]; then
      echo "qtap: no $vendor (cargoSetupHook changed?): cannot add the std crates for build-std" >&2
      exit 1
    fi
    chmod u+w "$vendor"
    for crate in ${stdVendor}/*; do
      name=$(basename "$crate")
      [ "$name" = Cargo.lock ] || [ -e "$vendor/$name" ] || ln -s "$(readlink -f "$crate")" "$vendor/$name"
    done
  '';

  postInstall = ''
    install -Dm644 systemd/qtap-devtools.socket $out/lib/systemd/system/qtap-devtools.socket
    install -Dm644 systemd/qtap-devtools.service $out/lib/systemd/system/qtap-devtools.service
    substituteInPlace $out/lib/systemd/system/qtap-devtools.service \
      --replace-fail "ExecStart=/usr/bin/qtap " "ExecStart=$out/bin/qtap "
  '';

  passthru = { inherit toolchain; };

  meta = {
    description = "Chrome DevTools' Network panel for a Linux server, fed by eBPF";
    longDescription = ''
      Every HTTP/S exchange on the host (ingress and egress, plaintext and TLS) streams
      into the browser at http://localhost:10001/devtools/, attributed to the process,
      user and container that made it. Start it with `systemctl start
      qtap-devtools.socket` or `sudo qtap --enable-dev-tools`.
    '';
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "qtap";
    platforms = [ "x86_64-linux" ];
  };
}
