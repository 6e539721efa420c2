use super::*;
use crate::manifest::source::site_digest;

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests/roles")).unwrap();
    std::fs::write(
        dir.path().join("manifests/site.toml"),
        "[site]\nname = \"t\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("manifests/roles/web.toml"),
        "modules = []\n",
    )
    .unwrap();
    dir
}

fn empty_plan(root: &Path) -> SavedPlan {
    SavedPlan::new(&SiteSource::read(root).unwrap(), &[], &[]).unwrap()
}

#[test]
fn site_digest_follows_content_and_names_not_mtime() {
    let dir = site();
    let before = site_digest(dir.path()).unwrap();
    assert_eq!(site_digest(dir.path()).unwrap(), before);
    let role = dir.path().join("manifests/roles/web.toml");
    std::fs::write(&role, "modules = [\"nginx\"]\n").unwrap();
    let edited = site_digest(dir.path()).unwrap();
    assert_ne!(edited, before);
    std::fs::rename(&role, dir.path().join("manifests/roles/www.toml")).unwrap();
    assert_ne!(site_digest(dir.path()).unwrap(), edited);
    // Files outside the digested folders (the run history, say) do not count.
    std::fs::create_dir_all(dir.path().join(".tandem")).unwrap();
    let now = site_digest(dir.path()).unwrap();
    std::fs::write(dir.path().join(".tandem/history.sqlite"), "x").unwrap();
    assert_eq!(site_digest(dir.path()).unwrap(), now);
}

#[test]
fn write_then_load_round_trips_and_checks_the_site() {
    let dir = site();
    let plan = empty_plan(dir.path());
    let file = dir.path().join("plan.json");
    plan.write(&file).unwrap();
    let loaded = SavedPlan::load(&file).unwrap();
    assert_eq!(loaded, plan);
    loaded.check_site(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("manifests/site.toml"),
        "[site]\nname = \"u\"\n",
    )
    .unwrap();
    let err = loaded.check_site(dir.path()).unwrap_err().to_string();
    assert!(err.contains("the site changed since the plan"), "{err}");
    // No temporary file is left next to the plan.
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty());
}

#[test]
fn other_files_and_versions_are_refused_by_name() {
    let dir = site();
    let file = dir.path().join("plan.json");
    std::fs::write(&file, "{\"hello\": 1}").unwrap();
    let err = SavedPlan::load(&file).unwrap_err().to_string();
    assert!(err.contains("is not a tandem saved plan"), "{err}");
    let mut value = serde_json::to_value(empty_plan(dir.path())).unwrap();
    value["version"] = 7.into();
    std::fs::write(&file, value.to_string()).unwrap();
    let err = SavedPlan::load(&file).unwrap_err().to_string();
    assert!(err.contains("format version 7"), "{err}");
}

#[test]
fn a_diff_whose_new_side_is_not_the_desired_text_is_caught() {
    let desired = "a\nb\nc\nd\n";
    let honest = "--- f\n+++ f\n@@ -1,3 +1,3 @@\n a\n-x\n+b\n c\n";
    assert!(new_side_matches(honest, desired));
    let forged = "--- f\n+++ f\n@@ -1,3 +1,3 @@\n a\n-x\n+B\n c\n";
    assert!(!new_side_matches(forged, desired));
    let shifted = "--- f\n+++ f\n@@ -1,2 +2,2 @@\n-x\n+b\n c\n";
    assert!(new_side_matches(shifted, desired));
    let wrong_place = "--- f\n+++ f\n@@ -1,2 +3,2 @@\n-x\n+b\n";
    assert!(!new_side_matches(wrong_place, desired));
}
