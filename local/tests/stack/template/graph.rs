//! The template's dependency graph: every reference resolves, no cycle, and the schema's
//! custom resource outlives the path it answers CloudFormation through.

use super::*;

/// Every name a resource refers to exists, and no chain of dependencies comes back to
/// where it started (CloudFormation refuses a circular template).
#[test]
fn every_reference_resolves_and_the_graph_has_no_cycle() {
    let template = Template::load();
    for name in template.resources.keys() {
        for reference in template.references(name) {
            let known = template.resources.contains_key(&reference)
                || template.parameters.contains(&reference)
                || reference.starts_with("AWS::");
            assert!(known, "{name} refers to {reference}, which the template does not define");
        }
        assert!(!template.needs(name).contains(name), "{name} depends on itself through a chain");
    }
}

/// The migrate function answers CloudFormation by a PUT to S3 from the private subnets:
/// through the S3 gateway endpoint on the private route table, or the NAT gateway; it
/// reads its secrets through the Secrets Manager endpoint, in its security group, and
/// logs to its log group. `DatabaseSchema` depends on all of it, so on a delete (or the
/// rollback of a failed create) it goes first, while it can still answer.
#[test]
fn the_schema_resource_is_deleted_before_anything_it_needs_to_answer() {
    let template = Template::load();
    let needs = template.needs("DatabaseSchema");
    let path = template.of_type(&[
        "AWS::EC2::VPCEndpoint",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::Route",
        "AWS::EC2::RouteTable",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::Subnet",
    ]);
    assert!(path.len() >= 10, "the template's network: {path:?}");
    // Its own security group, the endpoints', and the way to the database (Redis's is
    // not on its path).
    let own = [
        "MigrateFunction",
        "MigrateLogs",
        "FunctionSecurityGroup",
        "EndpointSecurityGroup",
        "DatabaseProxySecurityGroup",
    ];
    let missing: Vec<&str> = path.iter().map(String::as_str).chain(own).filter(|r| !needs.contains(*r)).collect();
    assert!(missing.is_empty(), "DatabaseSchema does not depend on {missing:?}, so a delete may remove them first");

    // And it waits minutes, not CloudFormation's default hour, for an answer.
    let timeout = template.definition("DatabaseSchema")["Properties"]["ServiceTimeout"].as_u64();
    let function_timeout = template.definition("MigrateFunction")["Properties"]["Timeout"].as_u64().unwrap();
    assert!(
        timeout.is_some_and(|t| t > function_timeout && t <= 900),
        "DatabaseSchema's ServiceTimeout ({timeout:?}) outlasts the function's {function_timeout} s by a little"
    );
}

/// The graph is not vacuous: it sees a dependency only a `Fn::Sub` or a `Fn::If` branch
/// names, and Globals' (the functions' security group).
#[test]
fn the_graph_sees_sub_if_and_globals() {
    let template = Template::load();
    let needs = template.needs("AdmitFunction");
    for expected in ["Redis", "DatabaseProxy", "FunctionSecurityGroup", "PrivateSubnetA", "UserPoolClient"] {
        assert!(needs.contains(expected), "AdmitFunction needs {expected}: {needs:?}");
    }
    assert!(!template.needs("Vpc").contains("DatabaseSchema"));
}
