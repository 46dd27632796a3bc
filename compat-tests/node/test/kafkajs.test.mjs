// kafkajs against a running Sluice broker, with node's built-in test runner. Each top-level test
// is one scenario of the client matrix: kafkajs:<test name> (see ../results-reporter.mjs).
//
// kafkajs compresses with gzip itself; snappy comes from the kafkajs-snappy plugin (pure JS).
// LZ4 and ZSTD need native codec plugins and are not part of this matrix. kafkajs has no static
// membership (group.instance.id) and no KIP-848.

import assert from 'node:assert/strict'
import { after, test } from 'node:test'
import { createRequire } from 'node:module'

import {
  COMPRESSIBLE_PAD,
  assertIdempotentBatches,
  TIMEOUT_MS,
  assertExactlyOnceInOrder,
  assertStoredWith,
  bootstrap,
  makeMessages,
  received,
  unique,
  waitUntil,
} from './common.mjs'

const require = createRequire(import.meta.url)
const { Kafka, AssignerProtocol, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs')
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')

const kafka = new Kafka({
  clientId: 'sluice-compat-kafkajs',
  brokers: [bootstrap()],
  logLevel: logLevel.WARN,
  connectionTimeout: 5000,
  requestTimeout: TIMEOUT_MS,
  // Bounded retries: a scenario that cannot work fails in seconds, not minutes.
  retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 6 },
})

/** Every client a scenario opens, disconnected at the end even when the scenario fails. */
const open = []
function track(client) {
  open.push(client)
  return client
}
after(async () => {
  await Promise.allSettled(open.map((c) => c.disconnect()))
})

async function admin() {
  const a = track(kafka.admin())
  await a.connect()
  return a
}

async function freshTopic(scenario, partitions) {
  const topic = unique(`kafkajs-${scenario}`)
  const a = await admin()
  assert.equal(
    await a.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true, timeout: TIMEOUT_MS }),
    true
  )
  await a.disconnect()
  return topic
}

async function producer(options = {}) {
  const p = track(kafka.producer({ allowAutoTopicCreation: false, idempotent: false, ...options }))
  await p.connect()
  return p
}

/** Sends in chunks of 25 (several produce requests), every one acknowledged by all replicas. */
async function produceAll(p, topic, messages, compression = CompressionTypes.None) {
  for (let i = 0; i < messages.length; i += 25) {
    const chunk = messages.slice(i, i + 25)
    const results = await p.send({ topic, acks: -1, compression, messages: chunk, timeout: TIMEOUT_MS })
    for (const r of results) assert.equal(r.errorCode, 0, JSON.stringify(r))
  }
}

/** A group consumer whose messages land in `got`; `joins` records each GROUP_JOIN's assignment. */
async function consumer(groupId, topic, { fromBeginning = true, readUncommitted = false } = {}) {
  const c = track(
    kafka.consumer({
      groupId,
      readUncommitted,
      sessionTimeout: 10000,
      rebalanceTimeout: 10000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
    })
  )
  const state = { consumer: c, got: [], assignment: null }
  c.on(c.events.GROUP_JOIN, ({ payload }) => {
    state.assignment = new Set(payload.memberAssignment[topic] ?? [])
  })
  await c.connect()
  await c.subscribe({ topics: [topic], fromBeginning })
  await c.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      state.got.push(received(partition, message))
    },
  })
  return state
}

const waitForCount = (what, states, count) =>
  waitUntil(`${count} messages (${what}); have ${states.map((s) => s.got.length)}`, () =>
    states.reduce((n, s) => n + s.got.length, 0) >= count
  )

test('roundtrip', { timeout: 120_000 }, async () => {
  const topic = await freshTopic('roundtrip', 3)
  const sent = makeMessages(topic, 3, 40)
  await produceAll(await producer(), topic, sent)
  const c = await consumer(unique('roundtrip'), topic)
  await waitForCount('one member from the beginning', [c], sent.length)
  await c.consumer.disconnect()
  assertExactlyOnceInOrder(sent, c.got)
  for (let p = 0; p < 3; p++) {
    assert.deepEqual(c.got.filter((m) => m.partition === p).map((m) => m.offset), [...Array(40).keys()])
  }
})

for (const [name, codec] of [
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
]) {
  test(`compression-${name}`, { timeout: 120_000 }, async () => {
    const topic = await freshTopic(`compression-${name}`, 2)
    const sent = makeMessages(topic, 2, 30, 0, COMPRESSIBLE_PAD)
    await produceAll(await producer(), topic, sent, codec)
    assertStoredWith(name, topic, 2, sent.length)
    const c = await consumer(unique('compression'), topic)
    await waitForCount(`${name} batches`, [c], sent.length)
    await c.consumer.disconnect()
    assertExactlyOnceInOrder(sent, c.got)
  })
}

test('admin', { timeout: 120_000 }, async () => {
  const a = await admin()
  const topic = unique('kafkajs-admin')
  const created = await a.createTopics({
    topics: [{ topic, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
    waitForLeaders: true,
    timeout: TIMEOUT_MS,
  })
  assert.equal(created, true)
  assert.ok((await a.listTopics()).includes(topic), 'listTopics names the new topic')
  const partitions = async () => {
    const { topics } = await a.fetchTopicMetadata({ topics: [topic] })
    return topics[0].partitions.filter((p) => p.leader >= 0).map((p) => p.partitionId).sort()
  }
  assert.deepEqual(await partitions(), [0, 1, 2])
  assert.equal(
    await a.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], timeout: TIMEOUT_MS }),
    false,
    'creating an existing topic answers TOPIC_ALREADY_EXISTS (kafkajs: false)'
  )

  const retention = async () => {
    const { resources } = await a.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
    })
    assert.equal(resources[0].errorCode, 0, JSON.stringify(resources[0]))
    return resources[0].configEntries.find((e) => e.configName === 'retention.ms')?.configValue
  }
  assert.equal(await retention(), '3600000')
  await a.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
  })
  assert.equal(await retention(), '7200000')

  await a.createPartitions({ topicPartitions: [{ topic, count: 5 }], timeout: TIMEOUT_MS })
  await waitUntil(`${topic} with 5 led partitions`, async () => (await partitions()).length === 5)

  await a.deleteTopics({ topics: [topic], timeout: TIMEOUT_MS })
  await waitUntil(`${topic} gone from listTopics`, async () => !(await a.listTopics()).includes(topic))
})

test('group', { timeout: 120_000 }, async () => {
  // Two members of one group split four partitions; each reads only its own, all messages
  // arrive exactly once.
  const topic = await freshTopic('group', 4)
  const groupId = unique('group')
  const members = [await consumer(groupId, topic), await consumer(groupId, topic)]
  const owned = await waitUntil('both members assigned disjoint partitions covering the topic', () => {
    const [a, b] = members.map((m) => m.assignment)
    if (!a?.size || !b?.size) return null
    const union = new Set([...a, ...b])
    return [...a].every((p) => !b.has(p)) && union.size === 4 ? [new Set(a), new Set(b)] : null
  })
  assert.deepEqual(members.map((m) => m.got.length), [0, 0], 'no message before any was produced')

  const sent = makeMessages(topic, 4, 15)
  await produceAll(await producer(), topic, sent)
  await waitForCount('across two members', members, sent.length)
  members.forEach((m, i) => {
    assert.ok(m.got.every((x) => owned[i].has(x.partition)), `member ${i} read partitions it does not own`)
    assert.deepEqual(m.assignment, owned[i], `member ${i} was reassigned mid-test`)
  })
  await Promise.all(members.map((m) => m.consumer.disconnect()))
  assertExactlyOnceInOrder(sent, [...members[0].got, ...members[1].got])
})

test('commit-resume', { timeout: 120_000 }, async () => {
  // A consumer commits offsets and leaves; a fresh one in the same group resumes there.
  const topic = await freshTopic('commit-resume', 2)
  const groupId = unique('resume')
  const first = makeMessages(topic, 2, 8)
  const p = await producer()
  await produceAll(p, topic, first)
  const a = await consumer(groupId, topic)
  await waitForCount('first consumer', [a], first.length)
  assertExactlyOnceInOrder(first, a.got)
  await a.consumer.commitOffsets([
    { topic, partition: 0, offset: '8' },
    { topic, partition: 1, offset: '6' },
  ])
  await a.consumer.disconnect()

  const adm = await admin()
  const [fetched] = await adm.fetchOffsets({ groupId, topics: [topic] })
  assert.deepEqual(
    fetched.partitions.map(({ partition, offset }) => [partition, offset]).sort(),
    [[0, '8'], [1, '6']]
  )

  const second = makeMessages(topic, 2, 5, 8)
  await produceAll(p, topic, second)
  const expected = [...first.filter((m) => m.partition === 1).slice(6), ...second]
  const b = await consumer(groupId, topic)
  await waitForCount('fresh consumer resuming', [b], expected.length)
  await b.consumer.disconnect()
  assertExactlyOnceInOrder(expected, b.got)
  assert.deepEqual(
    [0, 1].map((part) => b.got.find((m) => m.partition === part).offset),
    [8, 6],
    'resumed where the commit said'
  )
})

test('offsets-for-times', { timeout: 120_000 }, async () => {
  const topic = await freshTopic('offsets-for-times', 2)
  const base = Date.now() - 60_000
  const sent = [...Array(6).keys()].map((i) => ({
    partition: 0,
    key: Buffer.from(`k${i}`),
    value: Buffer.from(`v${i}`),
    timestamp: String(base + 1000 * i),
  }))
  sent.push({ partition: 1, key: Buffer.from('other'), value: Buffer.from('other'), timestamp: String(base + 100_000) })
  await produceAll(await producer(), topic, sent)

  const a = await admin()
  const lookup = async (ts) => {
    const offsets = await a.fetchTopicOffsetsByTimestamp(topic, ts)
    return offsets.find((o) => o.partition === 0).offset
  }
  assert.equal(await lookup(base - 5000), '0')
  assert.equal(await lookup(base), '0')
  assert.equal(await lookup(base + 2500), '3')
  assert.equal(await lookup(base + 5000), '5')
  assert.equal(await lookup(base + 5001), '6', 'past the newest timestamp: kafkajs answers the end offset')
  const ends = await a.fetchTopicOffsets(topic)
  assert.deepEqual(
    ends.map(({ partition, low, high }) => [partition, low, high]).sort(),
    [[0, '0', '6'], [1, '0', '1']]
  )

  const c = await consumer(unique('times'), topic, { fromBeginning: false })
  c.consumer.seek({ topic, partition: 0, offset: '3' })
  await waitForCount('from the looked-up offset', [c], 3)
  await c.consumer.disconnect()
  assert.deepEqual(
    c.got.map((m) => [m.partition, m.offset, m.value.toString(), m.timestamp]),
    [3, 4, 5].map((i) => [0, i, `v${i}`, base + 1000 * i])
  )
})

test('group-admin', { timeout: 120_000 }, async () => {
  // Groups seen through the admin API: listed and described while a member is active (state,
  // assignor, member, assignment), committed offsets, offsets set once the member left (kafkajs
  // itself refuses while members are active), the group deleted.
  const topic = await freshTopic('group-admin', 2)
  const groupId = unique('group-admin')
  await produceAll(await producer(), topic, makeMessages(topic, 2, 3))
  const a = await admin()
  const c = await consumer(groupId, topic)
  await waitForCount('the only member', [c], 6)
  await c.consumer.commitOffsets([
    { topic, partition: 0, offset: '2' },
    { topic, partition: 1, offset: '3' },
  ])
  const { groups: listed } = await a.listGroups()
  assert.deepEqual(listed.filter((g) => g.groupId === groupId), [{ groupId, protocolType: 'consumer' }])
  const { groups: [described] } = await a.describeGroups([groupId])
  assert.deepEqual([described.errorCode, described.state, described.protocol], [0, 'Stable', 'RoundRobinAssigner'])
  assert.equal(described.members.length, 1)
  const [member] = described.members
  assert.equal(member.clientId, 'sluice-compat-kafkajs')
  assert.deepEqual(AssignerProtocol.MemberAssignment.decode(member.memberAssignment).assignment, { [topic]: [0, 1] })

  const committed = async () => {
    const [fetched] = await a.fetchOffsets({ groupId, topics: [topic] })
    return fetched.partitions.map(({ partition, offset }) => [partition, offset]).sort()
  }
  assert.deepEqual(await committed(), [[0, '2'], [1, '3']])
  await c.consumer.disconnect()

  const { groups: [empty] } = await a.describeGroups([groupId])
  assert.deepEqual([empty.state, empty.members], ['Empty', []])
  await a.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '1' }] })
  assert.deepEqual(await committed(), [[0, '1'], [1, '3']])
  assert.deepEqual(await a.deleteGroups([groupId]), [{ groupId, errorCode: 0 }])
  assert.deepEqual(await committed(), [[0, '-1'], [1, '-1']], 'a deleted group has no offsets')
  const { groups: [dead] } = await a.describeGroups([groupId])
  assert.equal(dead.state, 'Dead')
})

test('delete-records', { timeout: 120_000 }, async () => {
  const topic = await freshTopic('delete-records', 1)
  const sent = makeMessages(topic, 1, 10)
  await produceAll(await producer(), topic, sent)
  const a = await admin()
  // kafkajs 2.2.4's deleteTopicRecords reads the leader from cached metadata without loading the
  // topic (KafkaJSTopicMetadataNotLoaded on a fresh admin client): load it first.
  await a.fetchTopicMetadata({ topics: [topic] })
  await a.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '4' }] })
  const [offsets] = await a.fetchTopicOffsets(topic)
  assert.deepEqual([offsets.low, offsets.high], ['4', '10'])
  const c = await consumer(unique('delete-records'), topic)
  await waitForCount('what is left', [c], 6)
  await c.consumer.disconnect()
  assertExactlyOnceInOrder(sent.slice(4), c.got)
  assert.deepEqual(c.got.map((m) => m.offset), [4, 5, 6, 7, 8, 9])
})

test('idempotence', { timeout: 120_000 }, async () => {
  // idempotent: true: InitProducerId, then batches with a producer id and sequences.
  const topic = await freshTopic('idempotence', 2)
  const sent = makeMessages(topic, 2, 20)
  await produceAll(await producer({ idempotent: true }), topic, sent)
  assertIdempotentBatches(topic, 2)
  const c = await consumer(unique('idempotence'), topic)
  await waitForCount("an idempotent producer's messages", [c], sent.length)
  await c.consumer.disconnect()
  assertExactlyOnceInOrder(sent, c.got)
})

// Known gaps: these fail against the broker today and are not on compat-tests/clients-allow-list.txt
// (the allow-list is what decides); FINDINGS-clients.md says why.

test('transactions', { timeout: 120_000 }, async () => {
  // Three transactions on one partition, the second aborted: a read-committed consumer (kafkajs's
  // default) sees the first and third, in order; a read-uncommitted one sees all three.
  const topic = await freshTopic('transactions', 1)
  const batches = [[0, 5], [5, 3], [8, 2]].map(([start, n]) => makeMessages(topic, 1, n, start))
  const p = await producer({ transactionalId: unique('txn'), idempotent: true, maxInFlightRequests: 1 })
  for (const [i, batch] of batches.entries()) {
    const txn = await p.transaction()
    await txn.send({ topic, acks: -1, messages: batch, timeout: TIMEOUT_MS })
    await (i === 1 ? txn.abort() : txn.commit())
  }
  for (const [readUncommitted, expected] of [
    [false, [...batches[0], ...batches[2]]],
    [true, batches.flat()],
  ]) {
    const c = await consumer(unique('txn-reader'), topic, { readUncommitted })
    await waitForCount(readUncommitted ? 'read uncommitted' : 'read committed', [c], expected.length)
    await c.consumer.disconnect()
    assertExactlyOnceInOrder(expected, c.got)
  }
})
