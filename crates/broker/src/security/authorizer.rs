//! ACL authorization as Kafka's `StandardAuthorizer` decides it
//! (`metadata/src/main/java/org/apache/kafka/metadata/authorizer/StandardAuthorizerData.java`).
//!
//! * `super.users` may do anything.
//! * The ACLs that apply to a resource are those of its type whose pattern matches its
//!   name: LITERAL with the same name, LITERAL `*`, PREFIXED with a prefix of the name.
//!   Of those, an ACL applies to a request when its principal is the request's (or
//!   `User:*`) and its host the client's IP (or `*`).
//! * Any applying DENY for the operation (or ALL) wins. Otherwise an applying ALLOW for
//!   the operation, for ALL, or for an operation implying it (READ, WRITE, DELETE and
//!   ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) allows.
//! * A resource with no ACLs at all (for anyone) is allowed only with
//!   `allow.everyone.if.no.acl.found=true`; one with ACLs that do not apply is denied.
//!
//! The ACLs live in the metadata store; each broker keeps them in memory, replaced as a
//! whole whenever the store's copy changes (on a single node after each CreateAcls or
//! DeleteAcls, in a cluster at every sync from etcd), so a check never waits on the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use rivulet_metadata::{AclBinding, AclOperation, PatternType, PermissionType, ResourceType};

use crate::request_context::KafkaPrincipal;

/// The name of the one CLUSTER resource (Kafka's `Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The authorizer class names Rivulet enforces: KRaft's `StandardAuthorizer` and the
/// ZooKeeper-era `AclAuthorizer`, whose decisions are the same.
pub const AUTHORIZER_CLASSES: &[&str] =
    &["org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer"];

/// The authorizer's static settings (`super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Principals (`User:admin`) allowed everything, from `super.users` (`;`-separated).
    pub super_users: BTreeSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// The ACLs of one resource type, indexed for lookups by resource name.
#[derive(Debug, Default)]
struct TypeAcls {
    /// LITERAL bindings by resource name (`*` included).
    literal: HashMap<String, Vec<Entry>>,
    /// PREFIXED bindings by prefix, in order: the prefixes of a name are found by walking
    /// the name's own prefixes.
    prefixed: BTreeMap<String, Vec<Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    principal: String,
    host: String,
    operation: AclOperation,
    permission: PermissionType,
}

/// Every ACL, as a broker holds them for checks and DescribeAcls.
#[derive(Debug, Default)]
pub struct AclSet {
    bindings: Vec<AclBinding>,
    by_type: HashMap<ResourceType, TypeAcls>,
}

impl AclSet {
    pub fn new(mut bindings: Vec<AclBinding>) -> Self {
        bindings.sort();
        bindings.dedup();
        let mut by_type: HashMap<ResourceType, TypeAcls> = HashMap::new();
        for b in &bindings {
            let entry = Entry {
                principal: b.principal.clone(),
                host: b.host.clone(),
                operation: b.operation,
                permission: b.permission_type,
            };
            let acls = by_type.entry(b.resource_type).or_default();
            match b.pattern_type {
                PatternType::Literal => acls.literal.entry(b.resource_name.clone()).or_default().push(entry),
                PatternType::Prefixed => acls.prefixed.entry(b.resource_name.clone()).or_default().push(entry),
                // Never stored (CreateAcls refuses them); a hand-edited store cannot widen access.
                _ => {}
            }
        }
        AclSet { bindings, by_type }
    }

    /// Every binding, sorted.
    pub fn bindings(&self) -> &[AclBinding] {
        &self.bindings
    }

    /// The entries of every binding whose pattern matches `name` of type `kind`.
    fn matching<'a>(&'a self, kind: ResourceType, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        let acls = self.by_type.get(&kind);
        let literal = acls
            .into_iter()
            .flat_map(move |a| [a.literal.get(name), if name == "*" { None } else { a.literal.get("*") }])
            .flatten()
            .flatten();
        let prefixes: Vec<&'a Vec<Entry>> = match acls {
            Some(a) if !a.prefixed.is_empty() => (1..=name.len())
                .filter(|&end| name.is_char_boundary(end))
                .filter_map(|end| a.prefixed.get(&name[..end]))
                .collect(),
            _ => Vec::new(),
        };
        literal.chain(prefixes.into_iter().flatten())
    }
}

/// Who a check is for, in the forms ACLs name them: the principal, `<type>:*` and the
/// client's address.
struct Requester {
    principal: String,
    wildcard: String,
    host: String,
}

impl Requester {
    fn new(principal: &KafkaPrincipal, host: IpAddr) -> Self {
        Requester {
            principal: principal.to_string(),
            wildcard: format!("{}:*", principal.principal_type),
            host: host.to_string(),
        }
    }

    /// Whether an ACL for `principal` at `host` applies to this requester.
    fn matches(&self, principal: &str, host: &str) -> bool {
        (principal == self.principal || principal == self.wildcard) && (host == "*" || host == self.host)
    }
}

/// Whether an ALLOW for `granted` allows `requested`.
fn allows(granted: AclOperation, requested: AclOperation) -> bool {
    use AclOperation::*;
    granted == All
        || granted == requested
        || (requested == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (requested == DescribeConfigs && granted == AlterConfigs)
}

/// The operations Kafka reports as authorized for a resource type (its
/// `*_authorized_operations` bit fields list these, each as `1 << code`).
pub fn operations_of(kind: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match kind {
        ResourceType::Topic => &[Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs],
        ResourceType::Group => &[Read, Delete, Describe, DescribeConfigs, AlterConfigs],
        ResourceType::Cluster => {
            &[Create, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite]
        }
        ResourceType::TransactionalId => &[Write, Describe],
        _ => &[],
    }
}

/// Decides whether a principal may act on a resource.
#[derive(Debug)]
pub struct Authorizer {
    config: AuthorizerConfig,
    acls: RwLock<Arc<AclSet>>,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig) -> Self {
        Authorizer { config, acls: RwLock::new(Arc::new(AclSet::default())) }
    }

    /// Replaces the ACLs checks read (the store's copy, read after a change).
    pub fn replace_acls(&self, bindings: Vec<AclBinding>) {
        let set = Arc::new(AclSet::new(bindings));
        let count = set.bindings.len();
        let mut acls = self.acls.write().unwrap_or_else(|p| p.into_inner());
        if acls.bindings != set.bindings {
            tracing::info!(acls = count, "ACLs changed");
            *acls = set;
        }
    }

    /// The ACLs as last loaded.
    pub fn acls(&self) -> Arc<AclSet> {
        self.acls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_super_user(&self, principal: &KafkaPrincipal) -> bool {
        self.config.super_users.contains(&principal.to_string())
    }

    /// Whether `principal`, connected from `host`, may perform `operation` on the resource
    /// `name` of type `kind`.
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        operation: AclOperation,
        kind: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let acls = self.acls();
        let requester = Requester::new(principal, host);
        let mut any_acl = false;
        let mut allowed = false;
        for entry in acls.matching(kind, name) {
            any_acl = true;
            if !requester.matches(&entry.principal, &entry.host) {
                continue;
            }
            match entry.permission {
                PermissionType::Deny if entry.operation == operation || entry.operation == AclOperation::All => {
                    return false;
                }
                PermissionType::Allow if allows(entry.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_acl && self.config.allow_everyone_if_no_acl_found)
    }

    /// Whether `principal` may perform `operation` on some resource of type `kind`
    /// (Kafka's `authorizeByResourceType`, used by KIP-679: WRITE on any topic lets a
    /// producer be idempotent). An ALLOW of any pattern counts unless a DENY on every
    /// resource of the type (LITERAL `*`) takes it away.
    pub fn authorize_any(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        operation: AclOperation,
        kind: ResourceType,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let acls = self.acls();
        let requester = Requester::new(principal, host);
        let applies = |b: &AclBinding| {
            b.resource_type == kind
                && requester.matches(&b.principal, &b.host)
                && (b.operation == operation || b.operation == AclOperation::All)
        };
        let denied_everywhere = acls.bindings.iter().any(|b| {
            applies(b)
                && b.permission_type == PermissionType::Deny
                && b.pattern_type == PatternType::Literal
                && b.resource_name == "*"
        });
        if denied_everywhere {
            return false;
        }
        let allowed_somewhere = acls.bindings.iter().any(|b| applies(b) && b.permission_type == PermissionType::Allow);
        allowed_somewhere
            || (self.config.allow_everyone_if_no_acl_found && !acls.bindings.iter().any(|b| b.resource_type == kind))
    }

    /// Kafka's `*_authorized_operations` bit field for a resource: bit `code` set for each
    /// operation of [`operations_of`] `kind` the principal may perform.
    pub fn authorized_operations(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        kind: ResourceType,
        name: &str,
    ) -> i32 {
        operations_of(kind)
            .iter()
            .filter(|&&op| self.authorize(principal, host, op, kind, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// Every operation of [`operations_of`] `kind` as a bit field: what a client is told
/// when no authorizer restricts it.
pub fn all_operations(kind: ResourceType) -> i32 {
    operations_of(kind).iter().fold(0, |bits, op| bits | (1 << op.code()))
}

/// A DescribeAcls or DeleteAcls filter (Kafka's `AclBindingFilter`): `None` and ANY match
/// everything; pattern type MATCH matches the bindings that would apply to the named
/// resource (LITERAL of that name or `*`, PREFIXED of a prefix of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission_type: PermissionType,
}

/// Why a filter or a new binding was refused: Kafka answers INVALID_REQUEST with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidAcl(pub String);

impl AclFilter {
    /// A filter from a request's codes; codes Kafka does not define, and UNKNOWN, are refused
    /// as Kafka refuses a filter with UNKNOWN elements.
    #[allow(clippy::too_many_arguments)]
    pub fn from_codes(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission_type: i8,
    ) -> Result<Self, InvalidAcl> {
        let unknown = || InvalidAcl("The filter contains UNKNOWN elements".to_string());
        let filter = AclFilter {
            resource_type: ResourceType::from_code(resource_type).ok_or_else(unknown)?,
            resource_name: resource_name.map(str::to_string),
            pattern_type: PatternType::from_code(pattern_type).ok_or_else(unknown)?,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: AclOperation::from_code(operation).ok_or_else(unknown)?,
            permission_type: PermissionType::from_code(permission_type).ok_or_else(unknown)?,
        };
        if filter.resource_type == ResourceType::Unknown
            || filter.pattern_type == PatternType::Unknown
            || filter.operation == AclOperation::Unknown
            || filter.permission_type == PermissionType::Unknown
        {
            return Err(unknown());
        }
        Ok(filter)
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        let name_equal = || self.resource_name.as_deref().is_none_or(|n| n == b.resource_name);
        let pattern = match self.pattern_type {
            PatternType::Any => name_equal(),
            PatternType::Match => match (self.resource_name.as_deref(), b.pattern_type) {
                (None, _) => true,
                (Some(n), PatternType::Literal) => n == b.resource_name || b.resource_name == "*",
                (Some(n), PatternType::Prefixed) => n.starts_with(&b.resource_name),
                _ => false,
            },
            exact => exact == b.pattern_type && name_equal(),
        };
        (self.resource_type == ResourceType::Any || self.resource_type == b.resource_type)
            && pattern
            && self.principal.as_deref().is_none_or(|p| p == b.principal)
            && self.host.as_deref().is_none_or(|h| h == b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission_type == PermissionType::Any || self.permission_type == b.permission_type)
    }
}

/// A binding to create, from a CreateAcls creation's codes, validated as Kafka's
/// `AclControlManager.validateNewAcl` does.
#[allow(clippy::too_many_arguments)]
pub fn new_binding(
    resource_type: i8,
    resource_name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission_type: i8,
) -> Result<AclBinding, InvalidAcl> {
    let invalid = |what: &str, code: i8| InvalidAcl(format!("Invalid {what} {code}"));
    let resource_type = ResourceType::from_code(resource_type)
        .filter(|t| !matches!(t, ResourceType::Unknown | ResourceType::Any))
        .ok_or_else(|| invalid("resourceType", resource_type))?;
    let pattern_type = PatternType::from_code(pattern_type)
        .filter(|t| matches!(t, PatternType::Literal | PatternType::Prefixed))
        .ok_or_else(|| invalid("patternType", pattern_type))?;
    let operation = AclOperation::from_code(operation)
        .filter(|o| !matches!(o, AclOperation::Unknown | AclOperation::Any))
        .ok_or_else(|| invalid("operation", operation))?;
    let permission_type = PermissionType::from_code(permission_type)
        .filter(|p| matches!(p, PermissionType::Allow | PermissionType::Deny))
        .ok_or_else(|| invalid("permissionType", permission_type))?;
    if resource_name.is_empty() {
        return Err(InvalidAcl("Resource name should not be empty".to_string()));
    }
    if !principal.contains(':') {
        return Err(InvalidAcl(format!("Could not parse principal from `{principal}` (no colon is present separating the principal type from the principal name)")));
    }
    Ok(AclBinding {
        resource_type,
        resource_name: resource_name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: host.to_string(),
        operation,
        permission_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        kind: ResourceType,
        pattern: PatternType,
        name: &str,
        principal: &str,
        op: AclOperation,
        perm: PermissionType,
    ) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.to_string(),
            pattern_type: pattern,
            principal: principal.to_string(),
            host: "*".to_string(),
            operation: op,
            permission_type: perm,
        }
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn authorizer(acls: Vec<AclBinding>, allow_if_none: bool) -> Authorizer {
        let a = Authorizer::new(AuthorizerConfig {
            super_users: ["User:admin".to_string()].into_iter().collect(),
            allow_everyone_if_no_acl_found: allow_if_none,
        });
        a.replace_acls(acls);
        a
    }

    use AclOperation::*;
    use PatternType::*;
    use PermissionType::*;
    use ResourceType::*;

    #[test]
    fn prefixed_read_allows_read_and_describe_of_matching_topics_only() {
        let a = authorizer(vec![acl(Topic, Prefixed, "orders-", "User:alice", Read, Allow)], false);
        let alice = KafkaPrincipal::user("alice");
        assert!(a.authorize(&alice, LOCAL, Read, Topic, "orders-eu"));
        assert!(a.authorize(&alice, LOCAL, Describe, Topic, "orders-eu"));
        assert!(!a.authorize(&alice, LOCAL, Write, Topic, "orders-eu"));
        assert!(!a.authorize(&alice, LOCAL, Read, Topic, "orders"));
        assert!(!a.authorize(&alice, LOCAL, Read, Topic, "payments"));
        assert!(!a.authorize(&KafkaPrincipal::user("bob"), LOCAL, Read, Topic, "orders-eu"));
        assert!(a.authorize(&KafkaPrincipal::user("admin"), LOCAL, Write, Cluster, CLUSTER_NAME));
    }

    #[test]
    fn deny_wins_and_implied_operations_allow_only() {
        let a = authorizer(
            vec![
                acl(Topic, Literal, "*", "User:*", All, Allow),
                acl(Topic, Literal, "secret", "User:alice", Read, Deny),
            ],
            false,
        );
        let alice = KafkaPrincipal::user("alice");
        assert!(!a.authorize(&alice, LOCAL, Read, Topic, "secret"));
        // A DENY of READ does not deny DESCRIBE (implication is for ALLOW only).
        assert!(a.authorize(&alice, LOCAL, Describe, Topic, "secret"));
        assert!(a.authorize(&alice, LOCAL, Read, Topic, "public"));
        let b = authorizer(vec![acl(Topic, Literal, "t", "User:alice", AlterConfigs, Allow)], false);
        assert!(b.authorize(&alice, LOCAL, DescribeConfigs, Topic, "t"));
        assert!(!b.authorize(&alice, LOCAL, Describe, Topic, "t"));
    }

    #[test]
    fn no_acl_rule_applies_only_to_resources_without_any_acl() {
        let a = authorizer(vec![acl(Group, Literal, "g1", "User:bob", Read, Allow)], true);
        let alice = KafkaPrincipal::user("alice");
        assert!(a.authorize(&alice, LOCAL, Read, Group, "g2"));
        assert!(!a.authorize(&alice, LOCAL, Read, Group, "g1"));
        let strict = authorizer(vec![], false);
        assert!(!strict.authorize(&alice, LOCAL, Read, Group, "g2"));
    }

    #[test]
    fn hosts_and_any_resource_checks() {
        let mut only_remote = acl(Topic, Prefixed, "t", "User:alice", Write, Allow);
        only_remote.host = "10.0.0.1".to_string();
        let a = authorizer(vec![only_remote], false);
        let alice = KafkaPrincipal::user("alice");
        assert!(!a.authorize(&alice, LOCAL, Write, Topic, "t1"));
        assert!(a.authorize(&alice, "10.0.0.1".parse().unwrap(), Write, Topic, "t1"));
        assert!(!a.authorize_any(&alice, LOCAL, Write, Topic));
        assert!(a.authorize_any(&alice, "10.0.0.1".parse().unwrap(), Write, Topic));
        let denied = authorizer(
            vec![
                acl(Topic, Prefixed, "t", "User:alice", Write, Allow),
                acl(Topic, Literal, "*", "User:alice", Write, Deny),
            ],
            false,
        );
        assert!(!denied.authorize_any(&alice, LOCAL, Write, Topic));
    }

    #[test]
    fn filters_match_as_kafka_binding_filters() {
        let prefixed = acl(Topic, Prefixed, "orders-", "User:alice", Read, Allow);
        let wildcard = acl(Topic, Literal, "*", "User:bob", Write, Allow);
        let group = acl(Group, Literal, "g", "User:alice", Read, Allow);
        let filter = |kind: i8, name: Option<&str>, pattern: i8| {
            AclFilter::from_codes(kind, name, pattern, None, None, 1, 1).unwrap()
        };
        let any = filter(1, None, 1);
        assert!([&prefixed, &wildcard, &group].iter().all(|b| any.matches(b)));
        let matching = filter(2, Some("orders-eu"), 2);
        assert!(matching.matches(&prefixed) && matching.matches(&wildcard) && !matching.matches(&group));
        let exact = filter(2, Some("orders-"), 3);
        assert!(!exact.matches(&prefixed), "LITERAL does not match a PREFIXED binding");
        assert!(filter(2, Some("orders-"), 4).matches(&prefixed));
        assert!(AclFilter::from_codes(0, None, 1, None, None, 1, 1).is_err());
        assert!(AclFilter::from_codes(2, None, 9, None, None, 1, 1).is_err());
    }

    #[test]
    fn new_bindings_are_validated_as_kafka_does() {
        assert!(new_binding(2, "t", 3, "User:a", "*", 3, 3).is_ok());
        for (kind, name, pattern, principal, op, perm) in [
            (1, "t", 3, "User:a", 3, 3),
            (2, "t", 2, "User:a", 3, 3),
            (2, "t", 1, "User:a", 3, 3),
            (2, "t", 3, "User:a", 1, 3),
            (2, "t", 3, "User:a", 3, 1),
            (2, "", 3, "User:a", 3, 3),
            (2, "t", 3, "alice", 3, 3),
        ] {
            assert!(
                new_binding(kind, name, pattern, principal, "*", op, perm).is_err(),
                "{kind} {name} {pattern} {principal} {op} {perm}"
            );
        }
    }

    #[test]
    fn authorized_operations_are_kafka_bit_fields() {
        let a = authorizer(vec![acl(Topic, Literal, "t", "User:alice", Read, Allow)], false);
        let bits = a.authorized_operations(&KafkaPrincipal::user("alice"), LOCAL, Topic, "t");
        assert_eq!(bits, (1 << 3) | (1 << 8));
        assert_eq!(all_operations(TransactionalId), (1 << 4) | (1 << 8));
    }
}
