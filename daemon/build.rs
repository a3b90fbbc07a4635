//! Builds the kernel programs (`daemon-ebpf`) for `bpfel-unknown-none` with the nightly
//! toolchain (through aya-build) and leaves the object in OUT_DIR as `qtap`, where
//! `capture` embeds it.
//!
//! Where there is no rustup (Nix builds), aya-build uses the toolchain on PATH, which
//! must then be a nightly with rust-src (or a stable one with `RUSTC_BOOTSTRAP=1`) and
//! `bpf-linker` on PATH. `AYA_BUILD_SKIP=1` skips the kernel side for quick user-space
//! unit-test cycles: the binary then refuses to capture and says why.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("daemon/ has no parent directory")?
        .join("daemon-ebpf");
    let root = root.to_str().context("non-UTF-8 path to daemon-ebpf")?;
    println!("cargo:rerun-if-changed=../daemon-common/src");
    println!("cargo:rerun-if-env-changed=QTAP_EBPF_TOOLCHAIN");
    let toolchain = std::env::var("QTAP_EBPF_TOOLCHAIN").ok();
    let toolchain = match toolchain.as_deref() {
        Some(t) => aya_build::Toolchain::Custom(t),
        None => aya_build::Toolchain::Nightly,
    };
    aya_build::build_ebpf(
        [aya_build::Package { name: "qtap-ebpf", root_dir: root, ..Default::default() }],
        toolchain,
    )
    .context("building the eBPF programs failed — run `.ci/setup` (installs nightly rust-src and bpf-linker)")?;
    let obj = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("qtap");
    if !obj.exists() {
        // AYA_BUILD_SKIP=1: an empty object, refused at run time with a clear message.
        std::fs::write(&obj, b"")?;
    }
    Ok(())
}
