//! Every advertised version of every API answers a real request about a real topic with a
//! response that decodes at that version. Catches fields set for versions that lack them (the
//! encoder refuses those and the connection would close) and decoding gaps, version by version.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use bytes::Bytes;
use common::{send_request, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn batch() -> Bytes {
    let mut b = protocol::records::BatchBuilder::new();
    b.push(protocol::records::Record {
        value: Some(Bytes::from_static(b"v")),
        timestamp: 1,
        ..Default::default()
    });
    b.build().freeze()
}

fn versions(broker: &TestBroker, key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let response: ApiVersionsResponse = send_request(
        &broker.kafka,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    let api = response
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .unwrap_or_else(|| panic!("{key:?} not advertised"));
    api.min_version..=api.max_version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_answers() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("v", 1, &[]).await;
    let addr = broker.kafka.clone();
    let metadata: MetadataResponse = send_request(
        &addr,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("v"))),
        ])),
    );
    let topic_id = metadata.topics[0].topic_id;

    for v in versions(&broker, ApiKey::ApiVersions) {
        let r: ApiVersionsResponse = send_request(
            &addr,
            ApiKey::ApiVersions,
            v,
            &ApiVersionsRequest::default(),
        );
        assert_eq!(r.error_code, 0, "ApiVersions v{v}");
    }
    for v in versions(&broker, ApiKey::Metadata) {
        let topic = metadata_request::MetadataRequestTopic::default().with_name(Some(name("v")));
        let r: MetadataResponse = send_request(
            &addr,
            ApiKey::Metadata,
            v,
            &MetadataRequest::default().with_topics(Some(vec![topic])),
        );
        assert_eq!(r.topics[0].error_code, 0, "Metadata v{v}");
    }
    for v in versions(&broker, ApiKey::Produce).filter(|v| *v >= 3) {
        let partition = produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch()));
        let topic = produce_request::TopicProduceData::default()
            .with_name(name("v"))
            .with_partition_data(vec![partition]);
        // acks=all: committed (visible to the fetches below) before the answer.
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![topic]);
        let r: ProduceResponse = send_request(&addr, ApiKey::Produce, v, &request);
        assert_eq!(
            r.responses[0].partition_responses[0].error_code, 0,
            "Produce v{v}"
        );
    }
    for v in versions(&broker, ApiKey::Fetch) {
        let partition = fetch_request::FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20);
        let mut topic = fetch_request::FetchTopic::default().with_partitions(vec![partition]);
        topic = if v >= 13 {
            topic.with_topic_id(topic_id)
        } else {
            topic.with_topic(name("v"))
        };
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic]);
        let r: FetchResponse = send_request(&addr, ApiKey::Fetch, v, &request);
        let data = &r.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "Fetch v{v}");
        assert!(
            data.records.as_ref().is_some_and(|b| !b.is_empty()),
            "Fetch v{v} returns the produced batches"
        );
    }
    for v in versions(&broker, ApiKey::ListOffsets) {
        let partition = list_offsets_request::ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-1);
        let topic = list_offsets_request::ListOffsetsTopic::default()
            .with_name(name("v"))
            .with_partitions(vec![partition]);
        let r: ListOffsetsResponse = send_request(
            &addr,
            ApiKey::ListOffsets,
            v,
            &ListOffsetsRequest::default().with_topics(vec![topic]),
        );
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "ListOffsets v{v}");
        assert!(r.topics[0].partitions[0].offset > 0, "ListOffsets v{v}");
    }
    for v in versions(&broker, ApiKey::OffsetForLeaderEpoch) {
        let partition = offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
            .with_partition(0)
            .with_leader_epoch(0);
        let topic = offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(name("v"))
            .with_partitions(vec![partition]);
        let request = OffsetForLeaderEpochRequest::default().with_topics(vec![topic]);
        let r: OffsetForLeaderEpochResponse =
            send_request(&addr, ApiKey::OffsetForLeaderEpoch, v, &request);
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "OffsetForLeaderEpoch v{v}"
        );
    }
    for v in versions(&broker, ApiKey::DescribeConfigs) {
        let resource = describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("v"));
        let r: DescribeConfigsResponse = send_request(
            &addr,
            ApiKey::DescribeConfigs,
            v,
            &DescribeConfigsRequest::default().with_resources(vec![resource]),
        );
        assert_eq!(r.results[0].error_code, 0, "DescribeConfigs v{v}");
    }
    for v in versions(&broker, ApiKey::AlterConfigs) {
        let config = alter_configs_request::AlterableConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("100000")));
        let resource = alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("v"))
            .with_configs(vec![config]);
        let r: AlterConfigsResponse = send_request(
            &addr,
            ApiKey::AlterConfigs,
            v,
            &AlterConfigsRequest::default().with_resources(vec![resource]),
        );
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
    }
    for v in versions(&broker, ApiKey::IncrementalAlterConfigs) {
        let config = incremental_alter_configs_request::AlterableConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("200000")));
        let resource = incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("v"))
            .with_configs(vec![config]);
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        let r: IncrementalAlterConfigsResponse =
            send_request(&addr, ApiKey::IncrementalAlterConfigs, v, &request);
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
    }
    for v in versions(&broker, ApiKey::DescribeCluster) {
        let r: DescribeClusterResponse = send_request(
            &addr,
            ApiKey::DescribeCluster,
            v,
            &DescribeClusterRequest::default(),
        );
        assert_eq!(r.error_code, 0, "DescribeCluster v{v}");
    }
    for v in versions(&broker, ApiKey::DescribeLogDirs) {
        let r: DescribeLogDirsResponse = send_request(
            &addr,
            ApiKey::DescribeLogDirs,
            v,
            &DescribeLogDirsRequest::default(),
        );
        assert_eq!(r.results[0].error_code, 0, "DescribeLogDirs v{v}");
    }
    for v in versions(&broker, ApiKey::DeleteRecords) {
        let partition = delete_records_request::DeleteRecordsPartition::default()
            .with_partition_index(0)
            .with_offset(1);
        let topic = delete_records_request::DeleteRecordsTopic::default()
            .with_name(name("v"))
            .with_partitions(vec![partition]);
        let r: DeleteRecordsResponse = send_request(
            &addr,
            ApiKey::DeleteRecords,
            v,
            &DeleteRecordsRequest::default().with_topics(vec![topic]),
        );
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "DeleteRecords v{v}"
        );
    }
    let mut partitions = 1;
    for v in versions(&broker, ApiKey::CreatePartitions) {
        partitions += 1;
        let topic = create_partitions_request::CreatePartitionsTopic::default()
            .with_name(name("v"))
            .with_count(partitions)
            .with_assignments(None);
        let r: CreatePartitionsResponse = send_request(
            &addr,
            ApiKey::CreatePartitions,
            v,
            &CreatePartitionsRequest::default().with_topics(vec![topic]),
        );
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}");
    }
    for v in versions(&broker, ApiKey::CreateTopics) {
        let topic_name = format!("created-v{v}");
        let topic = create_topics_request::CreatableTopic::default()
            .with_name(name(&topic_name))
            .with_num_partitions(1)
            .with_replication_factor(1);
        let r: CreateTopicsResponse = send_request(
            &addr,
            ApiKey::CreateTopics,
            v,
            &CreateTopicsRequest::default().with_topics(vec![topic]),
        );
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
    }
    for v in versions(&broker, ApiKey::DeleteTopics) {
        let topic_name = format!("created-v{}", v + 1);
        let request = if v >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(name(&topic_name)))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![name(&topic_name)])
        };
        let r: DeleteTopicsResponse = send_request(&addr, ApiKey::DeleteTopics, v, &request);
        assert_eq!(
            r.responses[0].error_code, 0,
            "DeleteTopics v{v} ({topic_name})"
        );
    }
}
