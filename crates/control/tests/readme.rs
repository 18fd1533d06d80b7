//! The README lists every command, as the tables declare them: its block between the
//! `commands:begin` and `commands:end` markers is exactly [`detour_control::markdown`].

#[test]
fn the_readme_lists_every_command_of_the_tables() {
    let path = format!("{}/../../README.md", env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(&path).unwrap();
    let begin = "<!-- commands:begin (generated: detour_control::markdown) -->\n";
    let end = "<!-- commands:end -->";
    let (Some(a), Some(b)) = (readme.find(begin), readme.find(end)) else {
        panic!("README.md lacks the {begin:?} ... {end:?} markers");
    };
    let want = detour_control::markdown();
    assert_eq!(
        &readme[a + begin.len()..b],
        want,
        "README.md's command list differs from the tables; replace it with:\n{want}"
    );
    for v in detour_config::commands::VERBS {
        assert!(want.contains(&format!("`{}", v.name())), "{}", v.name());
    }
}
