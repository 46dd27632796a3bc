//! `group-bench`: what the group coordinator costs per offset commit, beside a trivial request
//! measured against the same broker in the same run.
//!
//! A real `sluice` process (the release build) is started on ephemeral ports. 1,000 groups
//! commit offsets as simple consumers do (OffsetCommit v8, generation -1, empty member id, one
//! partition each) over several TCP connections in parallel: first at a fixed rate, then as fast
//! as the connections go. Each phase is paired with a reference phase: ApiVersions requests at
//! the same request rate over the same connections, so the broker's cost of merely receiving,
//! dispatching and answering a request is known and the coordinator's own cost (append to
//! `__consumer_offsets`, wait until durable, apply) stands out.
//!
//! | case | load | reference |
//! |---|---|---|
//! | `commit_fixed_rate` | commits paced to `--rate` (1,000/s) in total | ApiVersions paced to the same rate |
//! | `commit_max_rate` | commits back to back on every connection | ApiVersions paced to the rate the commits reached |
//!
//! Figures per case: achieved rate, latency p50/p99 (send to full response, per request), and
//! broker CPU per 1,000 requests/s: the broker process's utime+stime from `/proc/<pid>/stat`
//! (every thread) over the phase, as cores used divided by (requests/s / 1000). That is the same
//! number as CPU milliseconds per 1,000 requests; `cpu_us_per_request` says it per request.
//!
//! Correctness is checked, not assumed: every answer must carry error code 0; afterwards
//! OffsetFetch must return, for every group, exactly the last offset committed; the admin API's
//! `/v1/groups` must list every group and `/v1/groups/{group}` agree with OffsetFetch; and after a
//! clean restart (replay of `__consumer_offsets`) OffsetFetch must still agree. Any mismatch
//! ends the run with a non-zero exit status.
//!
//! Method notes:
//! - Each group belongs to exactly one connection and a connection has one request in flight,
//!   so the last commit of a group is well defined.
//! - Phases are split over interleaved rounds (2 by default) in which the commits and their
//!   reference alternate who goes first; figures aggregate the rounds, `round_*` show the spread.
//! - Pacing: connection `c` of `C` sends its k-th request at `start + (k*C + c) / rate`; when an
//!   answer is late it sends the next at once, so a missed rate shows as `rate_met: false`.
//!   Latency is measured from the actual send (service time, not schedule slip).
//! - The client runs on the same machine and takes CPU of its own (`client_cpu_*`); with two
//!   cores the broker and the client compete, which caps `commit_max_rate`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use serde_json::{json, Value};

use sluice_benches::process::{own_cpu_secs, process_cpu_secs, rss_kib};
use sluice_benches::sluice::{admin_get, broker_binary, Broker};
use sluice_benches::{round, BenchResult};

const TOPIC: &str = "group-bench";
const OFFSET_COMMIT_VERSION: i16 = 8;
const OFFSET_FETCH_VERSION: i16 = 8;
const API_VERSIONS_VERSION: i16 = 3;
const CREATE_TOPICS_VERSION: i16 = 5;
/// Groups asked for in one OffsetFetch request during verification.
const FETCH_GROUPS_PER_REQUEST: usize = 100;
/// A commit rate counts as met at this share of the target.
const RATE_MET_SHARE: f64 = 0.95;
/// How long one request may take before the run is declared broken.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    name = "group-bench",
    about = "Offset commits of many groups against a real broker, beside ApiVersions at the same rate"
)]
struct Args {
    /// Smoke run: one round of 1.5 s per phase (about 10 s in all).
    #[arg(long)]
    quick: bool,
    /// The `sluice` binary (default: target/release/sluice of this workspace).
    #[arg(long)]
    broker: Option<PathBuf>,
    /// Parent directory for the broker's data (a subdirectory is created and removed); a
    /// disk-backed file system, as the broker's O_DIRECT I/O expects.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Groups committing.
    #[arg(long, default_value_t = 1000)]
    groups: usize,
    /// Client connections (one thread each, one request in flight each).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Total commit rate of the fixed-rate case, per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds per phase (default 10, or 1.5 with --quick).
    #[arg(long)]
    secs: Option<f64>,
    /// Interleaved rounds per case (default 2, or 1 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Partitions of the committed-to topic (group g commits partition g % partitions).
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Broker shards (default: the broker's own default, one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// Keep the broker's data directory.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("group-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A Kafka connection: one request at a time
// ---------------------------------------------------------------------------------------------

struct KafkaConn {
    stream: TcpStream,
    correlation: i32,
    out: BytesMut,
}

impl KafkaConn {
    fn connect(addr: &str) -> BenchResult<KafkaConn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(KafkaConn {
            stream,
            correlation: 0,
            out: BytesMut::with_capacity(4096),
        })
    }

    fn call<Req, Resp>(&mut self, key: ApiKey, version: i16, request: &Req) -> BenchResult<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable,
    {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("group-bench")));
        self.out.clear();
        self.out.put_i32(0);
        header.encode(&mut self.out, Req::header_version(version))?;
        request.encode(&mut self.out, version)?;
        let length = i32::try_from(self.out.len() - 4)?;
        self.out[..4].copy_from_slice(&length.to_be_bytes());
        self.stream.write_all(&self.out)?;

        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length)?;
        let length = usize::try_from(i32::from_be_bytes(length))?;
        let mut answer = vec![0u8; length];
        self.stream.read_exact(&mut answer)?;
        let mut answer = Bytes::from(answer);
        let header = ResponseHeader::decode(&mut answer, key.response_header_version(version))?;
        if header.correlation_id != correlation {
            return Err(format!(
                "{key:?}: correlation id {} answered for {correlation}",
                header.correlation_id
            )
            .into());
        }
        let response = Resp::decode(&mut answer, version)?;
        if answer.has_remaining() {
            return Err(format!("{key:?}: {} bytes left after the response", answer.len()).into());
        }
        Ok(response)
    }
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

/// One group, owned by one connection.
#[derive(Debug, Clone)]
struct GroupCursor {
    name: String,
    partition: i32,
    /// The last offset committed (and acknowledged); -1 before the first.
    last: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Load {
    Commits,
    ApiVersions,
}

#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Requests per second in total over every connection.
    Rate(f64),
    Max,
}

/// What one phase measured.
#[derive(Debug, Clone, Default)]
struct Phase {
    requests: u64,
    wall: Duration,
    broker_cpu_secs: f64,
    /// The system (kernel) part of `broker_cpu_secs`.
    broker_sys_secs: f64,
    client_cpu_secs: f64,
    latencies_us: Vec<u32>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    /// Broker cores busy per 1,000 requests/s (= CPU ms per 1,000 requests).
    fn cpu_per_1k(&self) -> f64 {
        self.broker_cpu_secs * 1000.0 / self.requests as f64
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.broker_cpu_secs * 1e6 / self.requests as f64
    }

    fn sys_share(&self) -> f64 {
        self.broker_sys_secs / self.broker_cpu_secs
    }

    fn client_cpu_us_per_request(&self) -> f64 {
        self.client_cpu_secs * 1e6 / self.requests as f64
    }

    fn percentile_us(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p)
    }

    fn merge(phases: &[Phase]) -> Phase {
        let mut out = Phase::default();
        for p in phases {
            out.requests += p.requests;
            out.wall += p.wall;
            out.broker_cpu_secs += p.broker_cpu_secs;
            out.broker_sys_secs += p.broker_sys_secs;
            out.client_cpu_secs += p.client_cpu_secs;
            out.latencies_us.extend_from_slice(&p.latencies_us);
        }
        out.latencies_us.sort_unstable();
        out
    }
}

/// `p` in [0, 1] of sorted values (nearest rank).
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1])
}

fn commit_request(group: &GroupCursor, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.name.clone())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(group.partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])])
}

/// Commits `offset` for `group`; any error code fails the run.
fn commit(conn: &mut KafkaConn, group: &mut GroupCursor, offset: i64) -> BenchResult<()> {
    match try_commit(conn, group, offset)? {
        0 => Ok(()),
        code => Err(format!("commit of {} answered error {code}", group.name).into()),
    }
}

/// Commits `offset` for `group`; returns the answer's error code.
fn try_commit(conn: &mut KafkaConn, group: &mut GroupCursor, offset: i64) -> BenchResult<i16> {
    let response: OffsetCommitResponse = conn.call(
        ApiKey::OffsetCommit,
        OFFSET_COMMIT_VERSION,
        &commit_request(group, offset),
    )?;
    let code = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.error_code)
        .ok_or("a commit answer without the partition")?;
    if code == 0 {
        group.last = offset;
    }
    Ok(code)
}

/// The warm-up's commit: retries what a client retries while `__consumer_offsets` is being
/// created and opened (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE), for 30 s.
fn commit_retrying(conn: &mut KafkaConn, group: &mut GroupCursor, offset: i64) -> BenchResult<()> {
    const RETRIABLE: [i16; 2] = [14, 15];
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        match try_commit(conn, group, offset)? {
            0 => return Ok(()),
            code if RETRIABLE.contains(&code) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            code => {
                return Err(
                    format!("warm-up commit of {} answered error {code}", group.name).into(),
                )
            }
        }
    }
}

fn api_versions(conn: &mut KafkaConn) -> BenchResult<()> {
    let response: ApiVersionsResponse = conn.call(
        ApiKey::ApiVersions,
        API_VERSIONS_VERSION,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("group-bench"))
            .with_client_software_version(StrBytes::from_static_str("0.1.0")),
    )?;
    if response.error_code != 0 || response.api_keys.is_empty() {
        return Err(format!("ApiVersions answered error {}", response.error_code).into());
    }
    Ok(())
}

/// What every connection does in one phase.
#[derive(Debug, Clone, Copy)]
struct Plan {
    connections: usize,
    load: Load,
    pace: Pace,
    start: Instant,
    duration: Duration,
}

/// Connection `index`'s share of a phase; returns its latencies.
fn worker(
    conn: &mut KafkaConn,
    groups: &mut [GroupCursor],
    index: usize,
    plan: Plan,
) -> BenchResult<Vec<u32>> {
    let Plan {
        connections,
        load,
        pace,
        start,
        duration,
    } = plan;
    let mut latencies = Vec::new();
    let end = start + duration;
    let mut next_group = 0usize;
    for k in 0u64.. {
        let now = Instant::now();
        match pace {
            Pace::Rate(rate) => {
                let at = start
                    + Duration::from_secs_f64(
                        (k as f64 * connections as f64 + index as f64) / rate,
                    );
                if at >= end {
                    break;
                }
                if at > now {
                    std::thread::sleep(at - now);
                }
            }
            Pace::Max => {
                if now >= end {
                    break;
                }
            }
        }
        let sent = Instant::now();
        match load {
            Load::Commits => {
                if groups.is_empty() {
                    break;
                }
                let group = &mut groups[next_group % groups.len()];
                next_group += 1;
                let offset = group.last + 1;
                commit(conn, group, offset)?;
            }
            Load::ApiVersions => api_versions(conn)?,
        }
        let micros = sent.elapsed().as_micros();
        latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
    }
    Ok(latencies)
}

/// Runs one phase on every connection at once.
fn run_phase(
    conns: &mut [KafkaConn],
    groups: &mut [Vec<GroupCursor>],
    broker_pid: u32,
    load: Load,
    pace: Pace,
    duration: Duration,
) -> BenchResult<Phase> {
    let plan = Plan {
        connections: conns.len(),
        load,
        pace,
        start: Instant::now() + Duration::from_millis(20),
        duration,
    };
    let cpu_before = process_cpu_secs(broker_pid)?;
    let client_before = own_cpu_secs();
    let results: Vec<BenchResult<Vec<u32>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .zip(groups.iter_mut())
            .enumerate()
            .map(|(index, (conn, groups))| scope.spawn(move || worker(conn, groups, index, plan)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a worker panicked".into())))
            .collect()
    });
    let wall = plan.start.elapsed();
    let cpu_after = process_cpu_secs(broker_pid)?;
    let client_after = own_cpu_secs();
    let mut latencies_us = Vec::new();
    for result in results {
        latencies_us.extend(result?);
    }
    latencies_us.sort_unstable();
    Ok(Phase {
        requests: latencies_us.len() as u64,
        wall,
        broker_cpu_secs: (cpu_after.0 + cpu_after.1) - (cpu_before.0 + cpu_before.1),
        broker_sys_secs: cpu_after.1 - cpu_before.1,
        client_cpu_secs: client_after - client_before,
        latencies_us,
    })
}

// ---------------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------------

/// OffsetFetch for every group; returns how many agree, or the first disagreements.
fn verify_offsets(kafka: &str, groups: &[Vec<GroupCursor>]) -> BenchResult<usize> {
    let mut conn = KafkaConn::connect(kafka)?;
    let all: Vec<&GroupCursor> = groups.iter().flatten().collect();
    let mut mismatches = Vec::new();
    for chunk in all.chunks(FETCH_GROUPS_PER_REQUEST) {
        let request = OffsetFetchRequest::default().with_groups(
            chunk
                .iter()
                .map(|g| {
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(g.name.clone())))
                        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                            .with_partition_indexes(vec![g.partition])]))
                })
                .collect(),
        );
        let response: OffsetFetchResponse =
            conn.call(ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, &request)?;
        if response.groups.len() != chunk.len() {
            return Err(format!(
                "OffsetFetch answered {} groups for {}",
                response.groups.len(),
                chunk.len()
            )
            .into());
        }
        for (group, answer) in chunk.iter().zip(&response.groups) {
            let found = answer
                .topics
                .first()
                .and_then(|t| t.partitions.first())
                .filter(|p| p.partition_index == group.partition && p.error_code == 0)
                .map(|p| p.committed_offset);
            if answer.group_id.as_str() != group.name
                || answer.error_code != 0
                || found != Some(group.last)
            {
                mismatches.push(format!(
                    "{}: sent {} last, OffsetFetch says {found:?} (error {})",
                    group.name, group.last, answer.error_code
                ));
            }
        }
    }
    if mismatches.is_empty() {
        Ok(all.len())
    } else {
        Err(format!(
            "{} of {} groups disagree with what was committed, e.g. {}",
            mismatches.len(),
            all.len(),
            mismatches[..mismatches.len().min(5)].join("; ")
        )
        .into())
    }
}

/// `GET path` from the admin listener; returns the status, the JSON body and the time taken.
fn admin_json(admin: &str, path: &str) -> BenchResult<(u16, Value, Duration)> {
    let started = Instant::now();
    let (status, body) = admin_get(admin, path)?;
    let took = started.elapsed();
    Ok((status, serde_json::from_str(&body)?, took))
}

/// `__consumer_offsets` as the admin API sees it: (bytes in segments, bytes in tail caches).
fn offsets_topic_bytes(admin: &str) -> BenchResult<(u64, u64)> {
    let (status, topic, _) = admin_json(admin, "/v1/topics/__consumer_offsets")?;
    match (
        status,
        topic["size_bytes"].as_u64(),
        topic["cache_bytes"].as_u64(),
    ) {
        (200, Some(size), Some(cache)) => Ok((size, cache)),
        _ => Err(format!("/v1/topics/__consumer_offsets: status {status}: {topic}").into()),
    }
}

/// The admin API must list every group and agree with the bench on a few of them.
fn verify_admin(admin: &str, groups: &[Vec<GroupCursor>]) -> BenchResult<f64> {
    let total: usize = groups.iter().map(Vec::len).sum();
    let (status, listing, took) = admin_json(admin, "/v1/groups?limit=1000")?;
    if status != 200 || listing["total_groups"].as_u64() != Some(total as u64) {
        return Err(format!(
            "/v1/groups: status {status}, total_groups {}",
            listing["total_groups"]
        )
        .into());
    }
    let listed = listing["groups"].as_array().map_or(0, Vec::len);
    if listed != total.min(1000) {
        return Err(format!("/v1/groups listed {listed} of {total} groups").into());
    }
    for group in groups.iter().flatten().take(3) {
        let (status, detail, _) = admin_json(admin, &format!("/v1/groups/{}", group.name))?;
        let committed = detail["partitions"][0]["committed_offset"].as_i64();
        if status != 200 || committed != Some(group.last) {
            return Err(format!(
                "/v1/groups/{}: status {status}, committed {committed:?}, sent {}",
                group.name, group.last
            )
            .into());
        }
    }
    Ok(took.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

fn create_topic(kafka: &str, partitions: i32) -> BenchResult<()> {
    let mut conn = KafkaConn::connect(kafka)?;
    let response: CreateTopicsResponse = conn.call(
        ApiKey::CreateTopics,
        CREATE_TOPICS_VERSION,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(partitions)
                .with_replication_factor(1)])
            .with_timeout_ms(30_000),
    )?;
    match response.topics.first().map(|t| t.error_code) {
        Some(0) => Ok(()),
        code => Err(format!("CreateTopics answered {code:?}").into()),
    }
}

/// One case: rounds of the load and its reference, alternating who goes first.
struct Case {
    name: &'static str,
    target_rate: Option<f64>,
    commits: Vec<Phase>,
    reference: Vec<Phase>,
}

impl Case {
    fn json(&self) -> Value {
        let c = Phase::merge(&self.commits);
        let r = Phase::merge(&self.reference);
        let rate_met = self
            .target_rate
            .map(|target| c.rate() >= RATE_MET_SHARE * target);
        json!({
            "case": self.name,
            "target_rate": self.target_rate,
            "rate_met": rate_met,
            "commits": c.requests,
            "rate": round(c.rate()),
            "p50_us": c.percentile_us(0.50),
            "p99_us": c.percentile_us(0.99),
            "broker_cpu_per_1k_per_s": round(c.cpu_per_1k()),
            "broker_cpu_us_per_request": round(c.cpu_us_per_request()),
            "broker_cpu_sys_share": round(c.sys_share()),
            "client_cpu_us_per_request": round(c.client_cpu_us_per_request()),
            "reference": "api_versions_same_rate",
            "reference_rate": round(r.rate()),
            "reference_p50_us": r.percentile_us(0.50),
            "reference_p99_us": r.percentile_us(0.99),
            "reference_broker_cpu_per_1k_per_s": round(r.cpu_per_1k()),
            "reference_broker_cpu_us_per_request": round(r.cpu_us_per_request()),
            "reference_broker_cpu_sys_share": round(r.sys_share()),
            "coordinator_cpu_us_per_commit": round(c.cpu_us_per_request() - r.cpu_us_per_request()),
            "cpu_ratio": round(c.cpu_per_1k() / r.cpu_per_1k()),
            "round_rates": self.commits.iter().map(|p| round(p.rate())).collect::<Vec<_>>(),
            "round_cpu_per_1k_per_s": self.commits.iter().map(|p| round(p.cpu_per_1k())).collect::<Vec<_>>(),
            "round_reference_cpu_per_1k_per_s": self.reference.iter().map(|p| round(p.cpu_per_1k())).collect::<Vec<_>>(),
        })
    }

    fn print(&self) {
        let c = Phase::merge(&self.commits);
        let r = Phase::merge(&self.reference);
        eprintln!(
            "{:<18} {:>9.0} {:>8.0} {:>8.0} {:>10.4} {:>8.1} | {:>9.0} {:>8.0} {:>8.0} {:>10.4} {:>8.1} | {:>8.1}",
            self.name,
            c.rate(),
            c.percentile_us(0.50),
            c.percentile_us(0.99),
            c.cpu_per_1k(),
            c.cpu_us_per_request(),
            r.rate(),
            r.percentile_us(0.50),
            r.percentile_us(0.99),
            r.cpu_per_1k(),
            r.cpu_us_per_request(),
            c.cpu_us_per_request() - r.cpu_us_per_request(),
        );
    }
}

fn run(args: &Args) -> BenchResult<()> {
    if args.groups == 0 || args.connections == 0 || args.partitions < 1 || args.rate <= 0.0 {
        return Err("--groups, --connections, --partitions and --rate must be positive".into());
    }
    let binary = broker_binary(args.broker.as_deref())?;
    let secs = args.secs.unwrap_or(if args.quick { 1.5 } else { 10.0 });
    let duration = Duration::from_secs_f64(secs.max(0.1));
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 2 }).max(1);
    let root = args
        .dir
        .join(format!("sluice-group-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let outcome = run_in(args, &binary, &root, duration, rounds);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    outcome
}

fn run_in(
    args: &Args,
    binary: &Path,
    root: &Path,
    duration: Duration,
    rounds: usize,
) -> BenchResult<()> {
    let mut broker = Broker::start(binary, &root.join("data"), args.shards)?;
    let pid = broker.pid()?;
    eprintln!(
        "group-bench: broker {} (pid {pid}, backend {}, {} shards) at {}; {} groups over {} connections, {} s per phase, {rounds} round(s)",
        binary.display(),
        broker.backend,
        broker.shard_count,
        broker.kafka,
        args.groups,
        args.connections,
        duration.as_secs_f64(),
    );
    create_topic(&broker.kafka, args.partitions)?;

    let connections = args.connections.min(args.groups);
    let mut conns = (0..connections)
        .map(|_| KafkaConn::connect(&broker.kafka))
        .collect::<BenchResult<Vec<_>>>()?;
    let mut groups: Vec<Vec<GroupCursor>> = vec![Vec::new(); connections];
    for g in 0..args.groups {
        groups[g % connections].push(GroupCursor {
            name: format!("bench-group-{g:05}"),
            partition: (g % args.partitions as usize) as i32,
            last: -1,
        });
    }

    // Warm-up, untimed: every group commits once (creating `__consumer_offsets` and the
    // groups), and every connection asks ApiVersions once.
    let warm = Instant::now();
    std::thread::scope(|scope| -> BenchResult<()> {
        let handles: Vec<_> = conns
            .iter_mut()
            .zip(groups.iter_mut())
            .map(|(conn, groups)| {
                scope.spawn(move || -> BenchResult<()> {
                    api_versions(conn)?;
                    for group in groups.iter_mut() {
                        commit_retrying(conn, group, 0)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| "a warm-up worker panicked")??;
        }
        Ok(())
    })?;
    eprintln!(
        "group-bench: warm-up: {} groups committed once in {:.2} s",
        args.groups,
        warm.elapsed().as_secs_f64()
    );

    let mut fixed = Case {
        name: "commit_fixed_rate",
        target_rate: Some(args.rate),
        commits: Vec::new(),
        reference: Vec::new(),
    };
    let mut max = Case {
        name: "commit_max_rate",
        target_rate: None,
        commits: Vec::new(),
        reference: Vec::new(),
    };
    for round in 0..rounds {
        let commits_first = round % 2 == 0;
        for step in 0..2 {
            if (step == 0) == commits_first {
                fixed.commits.push(run_phase(
                    &mut conns,
                    &mut groups,
                    pid,
                    Load::Commits,
                    Pace::Rate(args.rate),
                    duration,
                )?);
            } else {
                fixed.reference.push(run_phase(
                    &mut conns,
                    &mut groups,
                    pid,
                    Load::ApiVersions,
                    Pace::Rate(args.rate),
                    duration,
                )?);
            }
        }
    }
    for round in 0..rounds {
        let commits_first = round % 2 == 0;
        for step in 0..2 {
            if (step == 0) == commits_first {
                max.commits.push(run_phase(
                    &mut conns,
                    &mut groups,
                    pid,
                    Load::Commits,
                    Pace::Max,
                    duration,
                )?);
            } else {
                // The rate the commits reached (in rounds where the reference goes first, the
                // previous round's).
                let rate = max.commits.last().map_or(args.rate, Phase::rate);
                max.reference.push(run_phase(
                    &mut conns,
                    &mut groups,
                    pid,
                    Load::ApiVersions,
                    Pace::Rate(rate),
                    duration,
                )?);
            }
        }
    }
    drop(conns);

    let commits_total: u64 = groups.iter().flatten().map(|g| (g.last + 1) as u64).sum();
    let verified = verify_offsets(&broker.kafka, &groups)?;
    let listing_ms = verify_admin(&broker.admin, &groups)?;
    let rss = rss_kib(pid);
    let (offsets_log_bytes, offsets_cache_bytes) = offsets_topic_bytes(&broker.admin)?;
    broker.stop()?;
    let restart = Instant::now();
    broker.launch()?;
    let restart_secs = restart.elapsed().as_secs_f64();
    let verified_after_restart = verify_offsets(&broker.kafka, &groups)?;
    broker.stop()?;

    eprintln!();
    eprintln!(
        "{:<18} {:>9} {:>8} {:>8} {:>10} {:>8} | {:>9} {:>8} {:>8} {:>10} {:>8} | {:>8}",
        "case",
        "commits/s",
        "p50 us",
        "p99 us",
        "cpu/1k/s",
        "cpu us",
        "ApiVer/s",
        "p50 us",
        "p99 us",
        "cpu/1k/s",
        "cpu us",
        "coord us"
    );
    fixed.print();
    max.print();
    eprintln!(
        "cpu/1k/s: broker cores busy per 1,000 requests/s; cpu us: broker CPU per request; coord us: commit minus ApiVersions"
    );
    eprintln!(
        "verified: {verified} groups by OffsetFetch, again after a restart ({restart_secs:.2} s to ready); /v1/groups listing of 1,000 in {listing_ms:.1} ms"
    );

    let line = json!({
        "bench": "group",
        "quick": args.quick,
        "groups": args.groups,
        "connections": connections,
        "partitions": args.partitions,
        "secs_per_phase": duration.as_secs_f64(),
        "rounds": rounds,
        "broker_backend": broker.backend,
        "broker_shards": broker.shard_count,
        "cases": [fixed.json(), max.json()],
        "commits_total": commits_total,
        "verified_groups": verified,
        "verified_groups_after_restart": verified_after_restart,
        "restart_to_ready_secs": round(restart_secs),
        "admin_listing_1000_ms": round(listing_ms),
        "broker_rss_kib": rss,
        "offsets_topic_log_bytes": offsets_log_bytes,
        "offsets_topic_cache_bytes": offsets_cache_bytes,
        "loadavg_end": std::fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_owned()).unwrap_or_default(),
    });
    println!("{line}");
    Ok(())
}
