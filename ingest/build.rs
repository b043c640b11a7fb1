//! Links the ingest function as a position-dependent executable on Linux.
//!
//! A position-independent executable (rustc's default) carries a relocation
//! for every pointer in its read-only data — about 1 MB of `.rela.dyn` in this
//! one, a tenth of the file — which the loader applies at every cold start.
//! Linked at a fixed address, the same pointers are resolved by the linker
//! instead. What is given up is the randomised address of the executable's
//! own code and data (the stack, heap and shared libraries stay randomised);
//! the function runs alone in its Lambda microVM, and the size is a goal
//! (README, "The Lambda binaries"). Objects stay position-independent: only
//! the link changes, so this needs no flags for the other crates, and a
//! `-no-pie` after rustc's own `-pie` is the one the linker driver keeps (gcc,
//! clang, and `zig cc`, which `cargo lambda` cross-links with).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
