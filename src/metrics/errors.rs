//! The error codes of each response, for `sluice_kafka_request_errors_total`: like Kafka's
//! `AbstractResponse.errorCounts()`, every partition, group, transaction or resource that
//! failed counts once (a Produce to three unknown partitions is three errors), and so does a
//! top-level error code.

use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, AlterConfigsResponse, ApiVersionsResponse,
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, CreatePartitionsResponse,
    CreateTopicsResponse, DeleteGroupsResponse, DeleteRecordsResponse, DeleteTopicsResponse,
    DescribeClusterResponse, DescribeConfigsResponse, DescribeGroupsResponse,
    DescribeLogDirsResponse, DescribeProducersResponse, DescribeTransactionsResponse,
    EndTxnResponse, FindCoordinatorResponse, HeartbeatResponse, IncrementalAlterConfigsResponse,
    InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    ListOffsetsResponse, ListTransactionsResponse, MetadataResponse, OffsetCommitResponse,
    OffsetDeleteResponse, OffsetFetchResponse, OffsetForLeaderEpochResponse, ProduceResponse,
    SyncGroupResponse, TxnOffsetCommitResponse,
};

use crate::kafka::fetch_encoding::FetchOut;

/// A response that carries Kafka error codes.
pub trait ErrorCodes {
    /// Calls `each` with every error code of the response, zeros included (the caller skips
    /// them).
    fn error_codes(&self, each: &mut dyn FnMut(i16));
}

/// Responses with one top-level `error_code` only.
macro_rules! top_level {
    ($($response:ty),* $(,)?) => {$(
        impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                each(self.error_code);
            }
        }
    )*};
}

top_level!(
    ApiVersionsResponse,
    DescribeClusterResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    ListGroupsResponse,
    ConsumerGroupHeartbeatResponse,
    InitProducerIdResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    ListTransactionsResponse,
);

/// Responses whose errors are per item of one list (`$list[].error_code`).
macro_rules! per_item {
    ($($response:ty => $list:ident),* $(,)?) => {$(
        impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                self.$list.iter().for_each(|item| each(item.error_code));
            }
        }
    )*};
}

per_item!(
    CreateTopicsResponse => topics,
    DeleteTopicsResponse => responses,
    CreatePartitionsResponse => results,
    DescribeConfigsResponse => results,
    AlterConfigsResponse => responses,
    IncrementalAlterConfigsResponse => responses,
    DescribeGroupsResponse => groups,
    DeleteGroupsResponse => results,
    ConsumerGroupDescribeResponse => groups,
    DescribeTransactionsResponse => transaction_states,
);

/// Responses whose errors are per partition of each topic (`$topics[].$partitions[].error_code`).
macro_rules! per_partition {
    ($($response:ty => $topics:ident . $partitions:ident),* $(,)?) => {$(
        impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                for topic in &self.$topics {
                    topic.$partitions.iter().for_each(|p| each(p.error_code));
                }
            }
        }
    )*};
}

per_partition!(
    ProduceResponse => responses.partition_responses,
    ListOffsetsResponse => topics.partitions,
    DeleteRecordsResponse => topics.partitions,
    OffsetForLeaderEpochResponse => topics.partitions,
    OffsetCommitResponse => topics.partitions,
    TxnOffsetCommitResponse => topics.partitions,
    DescribeProducersResponse => topics.partitions,
);

impl ErrorCodes for FetchOut {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| each(p.error_code));
        }
    }
}

impl ErrorCodes for MetadataResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.topics {
            each(topic.error_code);
            topic.partitions.iter().for_each(|p| each(p.error_code));
        }
    }
}

impl ErrorCodes for DescribeLogDirsResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        self.results.iter().for_each(|r| each(r.error_code));
    }
}

impl ErrorCodes for FindCoordinatorResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        self.coordinators.iter().for_each(|c| each(c.error_code));
    }
}

impl ErrorCodes for LeaveGroupResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        self.members.iter().for_each(|m| each(m.error_code));
    }
}

impl ErrorCodes for OffsetFetchResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| each(p.error_code));
        }
        for group in &self.groups {
            each(group.error_code);
            for topic in &group.topics {
                topic.partitions.iter().for_each(|p| each(p.error_code));
            }
        }
    }
}

impl ErrorCodes for OffsetDeleteResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.topics {
            topic.partitions.iter().for_each(|p| each(p.error_code));
        }
    }
}

impl ErrorCodes for AddPartitionsToTxnResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        let topics = self
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .chain(&self.results_by_topic_v3_and_below);
        for topic in topics {
            topic
                .results_by_partition
                .iter()
                .for_each(|p| each(p.partition_error_code));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    fn codes<R: ErrorCodes>(response: &R) -> Vec<i16> {
        let mut out = Vec::new();
        response.error_codes(&mut |c| {
            if c != 0 {
                out.push(c)
            }
        });
        out
    }

    #[test]
    fn every_failed_partition_counts() {
        let partition = |code| PartitionProduceResponse::default().with_error_code(code);
        let response = ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(vec![
                partition(0),
                partition(3),
                partition(3),
            ]),
            TopicProduceResponse::default().with_partition_responses(vec![partition(6)]),
        ]);
        assert_eq!(codes(&response), vec![3, 3, 6]);
        assert!(codes(&HeartbeatResponse::default()).is_empty());
        assert_eq!(
            codes(&HeartbeatResponse::default().with_error_code(27)),
            vec![27]
        );
    }
}
