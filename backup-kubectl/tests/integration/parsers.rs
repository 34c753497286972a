//! `kubectl` parsers on captured output, and their errors.

use backup_kubectl::{parse_pv_list, parse_workloads};

fn data(path: &str) -> Vec<u8> {
    std::fs::read(fixtures::data_dir().join(path)).unwrap()
}

#[test]
fn kubectl_pv_and_workloads() {
    let claims = parse_pv_list(&data("kubectl/pv.json")).unwrap();
    let w = parse_workloads(
        &data("kubectl/workloads-vaultwarden.json"),
        "vaultwarden",
        "vaultwarden-data",
    )
    .unwrap();
    let sts = parse_workloads(
        &data("kubectl/workloads-vaultwarden.json"),
        "vaultwarden",
        "data-postgres-2",
    )
    .unwrap();
    insta::assert_debug_snapshot!((claims, w, sts));
    assert!(parse_pv_list(b"{\"kind\":\"List\"}").is_err());
    assert!(parse_workloads(b"not json", "ns", "pvc").is_err());
}
