use super::*;
use crate::datastore::memory::MemoryStore;
use crate::datastore::{ResourceSource, SourceEvent};

fn pod(node: &str, host_network: bool) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"nodeName": node, "hostNetwork": host_network, "containers": []},
        "status": {"podIP": "10.65.0.7"}
    }))
    .unwrap()
}

async fn stored(store: &MemoryStore) -> Vec<Resource> {
    match store.source().next().await.unwrap() {
        SourceEvent::Snapshot(s) => s.resources,
        other => panic!("{other:?}"),
    }
}

fn endpoints(resources: &[Resource]) -> Vec<&crate::model::WorkloadEndpoint> {
    resources
        .iter()
        .filter_map(|r| match r {
            Resource::WorkloadEndpoint(ep) => Some(ep),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn pods_namespaces_and_policies_are_written_and_removed() {
    let store = MemoryStore::new();
    let d = KubernetesDriver::new(Arc::new(store.clone()));
    assert!(d.pod_updated(&pod("n1", false)).await.unwrap());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "shop"}})).unwrap();
    d.namespace_updated(&ns).await.unwrap();
    let np: NetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "allow-web", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}
    }))
    .unwrap();
    d.network_policy_updated(&np).await.unwrap();
    let all = stored(&store).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let eps = endpoints(&all);
    assert_eq!(
        (eps[0].node.as_str(), eps[0].namespace.as_deref()),
        ("n1", Some("shop"))
    );

    // Recreated on another node, then as a hostNetwork pod: one endpoint, then none.
    d.pod_updated(&pod("n2", false)).await.unwrap();
    let all = stored(&store).await;
    assert_eq!(endpoints(&all).len(), 1);
    assert_eq!(endpoints(&all)[0].node, "n2");
    assert!(!d.pod_updated(&pod("n2", true)).await.unwrap());
    assert!(endpoints(&stored(&store).await).is_empty());

    d.pod_updated(&pod("n2", false)).await.unwrap();
    assert!(d.pod_deleted("shop", "web-1").await.unwrap());
    assert!(!d.pod_deleted("shop", "web-1").await.unwrap());
    assert!(d.network_policy_deleted("shop", "allow-web").await.unwrap());
    assert!(d.namespace_deleted("shop").await.unwrap());
    assert!(stored(&store).await.is_empty());
}

#[tokio::test]
async fn an_unscheduled_pod_is_an_error_naming_the_field() {
    let store = MemoryStore::new();
    let d = KubernetesDriver::new(Arc::new(store.clone()));
    let mut p = pod("n1", false);
    p.spec.node_name = None;
    let e = d.pod_updated(&p).await.unwrap_err();
    assert!(e.to_string().contains("spec.nodeName"), "{e}");
}

#[tokio::test]
async fn service_accounts_are_profiles_and_pods_name_theirs() {
    let store = MemoryStore::new();
    let d = KubernetesDriver::new(Arc::new(store.clone()));
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!(
        {"metadata": {"name": "api", "namespace": "shop", "labels": {"tier": "backend"}}}
    ))
    .unwrap();
    d.service_account_updated(&sa).await.unwrap();
    let mut p = pod("n1", false);
    p.spec.service_account_name = Some("api".into());
    d.pod_updated(&p).await.unwrap();
    let all = stored(&store).await;
    let profile = all
        .iter()
        .find_map(|r| match r {
            Resource::Profile(p) => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(profile.name, "ksa.shop.api");
    assert_eq!(profile.labels_to_apply["pcsa.tier"], "backend");
    assert_eq!(
        profile.labels_to_apply["pcsa.projectcalico.org/name"],
        "api"
    );
    let ep = endpoints(&all)[0];
    assert_eq!(ep.profiles, ["kns.shop", "ksa.shop.api"]);
    assert_eq!(ep.labels["projectcalico.org/serviceaccount"], "api");
    assert!(d.service_account_deleted("shop", "api").await.unwrap());
    assert!(!d.service_account_deleted("shop", "api").await.unwrap());
}

#[tokio::test]
async fn admin_and_baseline_policies_are_written_and_removed() {
    use crate::integrations::kubernetes::{AdminNetworkPolicy, BaselineAdminNetworkPolicy};
    let store = MemoryStore::new();
    let d = KubernetesDriver::new(Arc::new(store.clone()));
    let spec = serde_json::json!({"subject": {"namespaces": {}},
        "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]});
    let anp: AdminNetworkPolicy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "no-cross-talk"},
        "spec": {"priority": 3, "subject": spec["subject"], "ingress": spec["ingress"]}
    }))
    .unwrap();
    let banp: BaselineAdminNetworkPolicy =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}, "spec": spec}))
            .unwrap();
    d.admin_network_policy_updated(&anp).await.unwrap();
    d.baseline_admin_network_policy_updated(&banp)
        .await
        .unwrap();
    let tiers: Vec<String> = stored(&store)
        .await
        .iter()
        .filter_map(|r| match r {
            Resource::Policy(p) => Some(format!("{}/{}", p.tier, p.name)),
            _ => None,
        })
        .collect();
    assert_eq!(
        tiers,
        [
            "adminnetworkpolicy/kanp.adminnetworkpolicy.no-cross-talk",
            "baselineadminnetworkpolicy/kbanp.baselineadminnetworkpolicy.default"
        ]
    );
    assert!(d
        .admin_network_policy_deleted("no-cross-talk")
        .await
        .unwrap());
    assert!(d.baseline_admin_network_policy_deleted().await.unwrap());
    assert!(!d.baseline_admin_network_policy_deleted().await.unwrap());
    assert!(stored(&store).await.is_empty());
}

#[tokio::test]
async fn cluster_network_policies_are_written_and_removed_per_tier() {
    let store = MemoryStore::new();
    let d = KubernetesDriver::new(Arc::new(store.clone()));
    let cnp = |tier: &str| -> ClusterNetworkPolicy {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "guard"},
            "spec": {"tier": tier, "priority": 7, "subject": {"namespaces": {}},
                "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}
        }))
        .unwrap()
    };
    d.cluster_network_policy_updated(&cnp("Admin"))
        .await
        .unwrap();
    d.cluster_network_policy_updated(&cnp("Baseline"))
        .await
        .unwrap();
    let names: Vec<String> = stored(&store)
        .await
        .iter()
        .filter_map(|r| match r {
            Resource::Policy(p) => Some(format!("{}/{} {:?}", p.tier, p.name, p.order)),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            "kube-admin/kcnp.kube-admin.guard Some(7.0)",
            "kube-baseline/kcnp.kube-baseline.guard Some(7.0)"
        ]
    );
    assert!(d
        .cluster_network_policy_deleted("Admin", "guard")
        .await
        .unwrap());
    assert!(!d
        .cluster_network_policy_deleted("Admin", "guard")
        .await
        .unwrap());
    let e = d
        .cluster_network_policy_deleted("Middle", "guard")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("spec.tier"), "{e}");
    assert!(d
        .cluster_network_policy_deleted("Baseline", "guard")
        .await
        .unwrap());
    assert!(stored(&store).await.is_empty());
}
