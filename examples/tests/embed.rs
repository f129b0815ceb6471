//! The `embed` example runs and its own checks pass.

#[test]
fn the_embed_example_runs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_embed"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("web → db tcp/5432 allowed: true"));
}
