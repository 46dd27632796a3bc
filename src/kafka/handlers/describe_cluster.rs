//! DescribeCluster (KIP-700): the cluster id, this broker (its advertised Kafka address), and the
//! controller, which on a single node is this broker too. Only broker endpoints are served, as
//! on any Kafka broker listener (KIP-919 controller endpoints live on controller listeners).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::kafka::acl_ops;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DescribeCluster,
    min: 0,
    max: 2,
};

/// KIP-919 endpoint types.
const BROKER_ENDPOINTS: i8 = 1;
const CONTROLLER_ENDPOINTS: i8 = 2;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if let Err((code, message)) = check_endpoint_type(request.endpoint_type, ctx.version) {
        return DescribeClusterResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)));
    }
    let broker = &ctx.shard.ctx;
    let node = BrokerId(broker.config.node_id);
    let (host, port) = &broker.advertised;
    let operations = acl_ops::if_requested(
        request.include_cluster_authorized_operations,
        acl_ops::CLUSTER,
    );
    DescribeClusterResponse::default()
        .with_endpoint_type(BROKER_ENDPOINTS)
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(node)
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(str_bytes(host.clone()))
            .with_port(*port)])
        .with_cluster_authorized_operations(operations)
}

/// Kafka's answers: v0 cannot name an endpoint type, so any mismatch is INVALID_REQUEST there;
/// from v1 a controller request is MISMATCHED_ENDPOINT_TYPE and an unknown type
/// UNSUPPORTED_ENDPOINT_TYPE.
fn check_endpoint_type(requested: i8, version: i16) -> Result<(), (ResponseError, String)> {
    if requested == BROKER_ENDPOINTS {
        return Ok(());
    }
    let (code, message) = if requested == CONTROLLER_ENDPOINTS {
        (
            ResponseError::MismatchedEndpointType,
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".to_owned(),
        )
    } else {
        (
            ResponseError::UnsupportedEndpointType,
            format!("Unsupported endpoint type {requested}"),
        )
    };
    if version == 0 {
        return Err((ResponseError::InvalidRequest, message));
    }
    Err((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_types_follow_kafka() {
        assert!(check_endpoint_type(1, 1).is_ok());
        assert_eq!(
            check_endpoint_type(2, 1).unwrap_err().0,
            ResponseError::MismatchedEndpointType
        );
        assert_eq!(
            check_endpoint_type(7, 1).unwrap_err().0,
            ResponseError::UnsupportedEndpointType
        );
        assert_eq!(
            check_endpoint_type(2, 0).unwrap_err().0,
            ResponseError::InvalidRequest
        );
    }
}
