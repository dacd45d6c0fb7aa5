//! The documented way for users to snapshot-test a pipeline (docs/testing.md): its plan
//! and the metrics of its first steps, on tiny data, as one insta snapshot.

#[test]
fn digits_mlp_first_steps_are_stable() {
    let text = engine::testing::snapshot_run(
        "pipelines/digits_mlp.yaml",
        &["stages.batch.batch_size=16"],
        12,
    )
    .expect("the pipeline runs");
    assert!(text.contains("plan digits_mlp"));
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("steps train "))
            .count(),
        12
    );
    let again = engine::testing::snapshot_run(
        "pipelines/digits_mlp.yaml",
        &["stages.batch.batch_size=16"],
        12,
    )
    .unwrap();
    assert_eq!(text, again, "two runs give the same text");
    // Snapshots hold numbers measured on one kind of device; name them after it (auto
    // picks a GPU, else the cpu backend on machines with only Mesa's software adapters).
    let backend = match std::env::var("ENGINE_TEST_BACKEND").as_deref() {
        Ok(b @ ("gl" | "vulkan" | "cpu")) => b.to_string(),
        _ => ops::Gpu::new(&ops::gpu::DeviceRequest::default())
            .expect("a device")
            .adapter()
            .backend
            .clone(),
    };
    insta::assert_snapshot!(format!("digits_mlp_first_steps_{backend}"), text);
}

#[test]
fn invalid_pipelines_come_back_as_readable_errors() {
    let err = engine::testing::snapshot_run("tests/invalid/misspelt_stage_reference.yaml", &[], 5)
        .unwrap_err();
    assert!(err.contains("did you mean `fwd`?"), "{err}");
}
