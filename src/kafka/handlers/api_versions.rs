//! ApiVersions: the versions of every API, straight from the handler table.

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};

use super::{ApiSupport, RequestContext, SUPPORTED};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::ApiVersions,
    min: 0,
    max: 4,
};

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.key as i16)
                .with_min_version(s.min)
                .with_max_version(s.max)
        })
        .collect()
}

pub async fn handle(
    _ctx: &RequestContext<'_>,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The v0 answer to an ApiVersions version we do not serve.
pub fn unsupported_version(header: &RequestHeader) -> Result<BytesMut, String> {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    super::encode_with_version(ApiKey::ApiVersions, header, &response, 0)
}
