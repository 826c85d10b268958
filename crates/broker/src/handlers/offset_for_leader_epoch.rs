//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, which consumers use to
//! validate their position after a leader change (KIP-320) and followers to truncate.

use rivulet_protocol::kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use rivulet_protocol::kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use rivulet_protocol::ResponseError;

use super::check_leader_epoch;
use crate::broker::Broker;

pub fn handle(broker: &Broker, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let topic = broker.topics.get(wanted.topic.0.as_str());
            let partitions = wanted
                .partitions
                .iter()
                .map(|p| {
                    let response =
                        EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    let Some((topic, log)) = topic.as_ref().and_then(|t| t.partition(p.partition).map(|l| (t, l)))
                    else {
                        return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let current = topic.leader_epoch(p.partition);
                    if let Some(error) = check_leader_epoch(p.current_leader_epoch, current) {
                        return response.with_error_code(error.code());
                    }
                    // A single replica has had one leader epoch since the topic was created,
                    // so every epoch up to the current one ends at the log end.
                    if p.leader_epoch <= current {
                        response.with_leader_epoch(current).with_end_offset(log.log_end_offset())
                    } else {
                        response
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(wanted.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
