// What the kafkajs scenarios share: the broker address, fresh names, the messages a scenario
// sends, the exactly-once-in-order check, waiting with a deadline, and a look at the batches the
// broker stored (to prove a codec was really used). Mirrors compat-tests/python/helpers.py.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { openSync, readSync, closeSync, readdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

/** Padding of the compression scenarios' messages (see makeMessages). */
export const COMPRESSIBLE_PAD = 40

/** How long any one wait (a delivery, a rebalance, a message) may take. */
export const TIMEOUT_MS = Number(process.env.SLUICE_CLIENT_TIMEOUT_S ?? 30) * 1000

export function bootstrap() {
  const addr = process.env.SLUICE_BOOTSTRAP
  if (!addr) {
    throw new Error(
      'SLUICE_BOOTSTRAP is not set: run compat-tests/run-clients.sh, or start a broker ' +
        '(target/release/sluice serve) and export SLUICE_BOOTSTRAP=127.0.0.1:PORT'
    )
  }
  return addr
}

/** A name no earlier run or scenario used (topics, groups). */
export function unique(prefix) {
  return `${prefix}-${randomUUID().replaceAll('-', '').slice(0, 12)}`
}

/** Calls `probe` (may be async) until it returns something truthy and returns that; fails
 * naming `what` and the last value after `timeoutMs`. */
export async function waitUntil(what, probe, timeoutMs = TIMEOUT_MS) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const last = await probe()
    if (last) return last
    if (Date.now() >= end) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what} (last: ${JSON.stringify(last)})`)
    }
    await delay(50)
  }
}

/**
 * `perPartition` messages for each partition, interleaved across partitions as they are sent.
 * Values name topic, partition and sequence; the first message of each partition has a null
 * key; headers include a repeated name (kafkajs: an array value), an empty value and non-UTF-8
 * bytes. Each is { partition, key, value, headers } in kafkajs's own shape. `pad` repeats a
 * word in each value so that compression always shrinks a batch (as in helpers.py).
 */
export function makeMessages(topic, partitions, perPartition, start = 0, pad = 0) {
  const out = []
  for (let i = start; i < start + perPartition; i++) {
    for (let p = 0; p < partitions; p++) {
      out.push({
        partition: p,
        key: i === 0 ? null : Buffer.from(`key-${p}-${i}`),
        value: Buffer.from(`${topic}/p${p}/m${i}/` + 'payload '.repeat(i % 5) + 'compressible '.repeat(pad)),
        headers: {
          seq: Buffer.from(String(i)),
          origin: [Buffer.from('sluice-compat'), Buffer.alloc(0)],
          bin: Buffer.from([0, 255, i % 256]),
        },
      })
    }
  }
  return out
}

/** A received kafkajs message in the same shape as a sent one, plus its offset. */
export function received(partition, message) {
  return {
    partition,
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
    key: message.key,
    value: message.value,
    headers: message.headers,
  }
}

const show = (b) => (b === null || b === undefined ? String(b) : JSON.stringify(b.toString('latin1')))
const headersText = (h) =>
  JSON.stringify(
    Object.entries(h ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v.map((x) => x.toString('hex')) : v.toString('hex')])
  )

/** Every expected message arrived exactly once, each partition's in the order sent, with
 * strictly increasing offsets and equal keys and headers. */
export function assertExactlyOnceInOrder(expected, got, { headers = true } = {}) {
  const byPartition = (list) => {
    const m = new Map()
    for (const x of list) m.set(x.partition, [...(m.get(x.partition) ?? []), x])
    return m
  }
  const exp = byPartition(expected)
  const rec = byPartition(got)
  const problems = []
  for (const p of [...new Set([...exp.keys(), ...rec.keys()])].sort()) {
    const e = exp.get(p) ?? []
    const g = rec.get(p) ?? []
    const ev = e.map((m) => show(m.value))
    const gv = g.map((m) => show(m.value))
    if (ev.join('\n') !== gv.join('\n')) {
      const counts = new Map()
      for (const v of gv) counts.set(v, (counts.get(v) ?? 0) + 1)
      const dups = [...counts].filter(([, n]) => n > 1).map(([v]) => v)
      const missing = ev.filter((v) => !counts.has(v))
      const stray = gv.filter((v) => !ev.includes(v))
      problems.push(
        `partition ${p}: expected ${ev.length} messages, got ${gv.length}; missing ${missing.slice(0, 3)}, ` +
          `duplicated ${dups.slice(0, 3)}, unexpected ${stray.slice(0, 3)}`
      )
      continue
    }
    for (let i = 1; i < g.length; i++) {
      if (g[i].offset <= g[i - 1].offset) problems.push(`partition ${p}: offsets not increasing at ${g[i].offset}`)
    }
    e.forEach((m, i) => {
      if (show(m.key) !== show(g[i].key)) problems.push(`partition ${p} offset ${g[i].offset}: key ${show(g[i].key)}, expected ${show(m.key)}`)
      if (headers && headersText(m.headers) !== headersText(g[i].headers)) {
        problems.push(`partition ${p} offset ${g[i].offset}: headers ${headersText(g[i].headers)}, expected ${headersText(m.headers)}`)
      }
    })
  }
  assert.deepEqual(problems, [], problems.slice(0, 20).join('\n'))
}

const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd']

/** [codec, record count, producer id, base sequence] of every batch the broker stored for
 * topic-partition, read from its segment files (RecordBatch v2 header: length at byte 8, magic
 * at 16, attributes at 21, producer id at 43, base sequence at 53, record count at 57); null when
 * SLUICE_DATA_DIR is not set (a broker started by hand). */
export function storedBatches(topic, partition) {
  const dataDir = process.env.SLUICE_DATA_DIR
  if (!dataDir) return null
  const dir = join(dataDir, `${topic}-${partition}`)
  assert.ok(existsSync(dir), `no partition directory ${dir}`)
  const batches = []
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.log')).sort()) {
    const fd = openSync(join(dir, name), 'r')
    try {
      const header = Buffer.alloc(61)
      for (let pos = 0; ; ) {
        if (readSync(fd, header, 0, 61, pos) < 61) break
        const length = header.readInt32BE(8)
        if (length <= 0 || header[16] !== 2) break // the preallocated, zero-filled rest
        batches.push([
          CODECS[header.readInt16BE(21) & 7] ?? 'unknown',
          header.readInt32BE(57),
          header.readBigInt64BE(43), // producer id, -1 when not idempotent
          header.readInt32BE(53), // base sequence
        ])
        pos += 12 + length
      }
    } finally {
      closeSync(fd)
    }
  }
  return batches
}

/** Every stored batch of the topic uses `codec`, and they hold `records` records in all. */
export function assertStoredWith(codec, topic, partitions, records) {
  const seen = []
  for (let p = 0; p < partitions; p++) {
    const batches = storedBatches(topic, p)
    if (batches === null) return
    seen.push(...batches)
  }
  assert.deepEqual([...new Set(seen.map(([c]) => c))], [codec], `stored batches: ${seen.join(' ')}`)
  assert.equal(seen.reduce((n, [, r]) => n + r, 0), records, `stored batches: ${seen.join(' ')}`)
}

/** Every stored batch carries one producer id (>= 0), and each partition's sequences run up
 * from 0: what an idempotent producer writes (KIP-98). */
export function assertIdempotentBatches(topic, partitions) {
  const ids = new Set()
  for (let p = 0; p < partitions; p++) {
    const batches = storedBatches(topic, p)
    if (batches === null) return
    assert.ok(batches.length > 0, `no batches stored for ${topic}-${p}`)
    const sequences = batches.map(([, , , seq]) => seq)
    assert.ok(sequences[0] === 0 && sequences.every((s, i) => i === 0 || s > sequences[i - 1]), `partition ${p} sequences ${sequences}`)
    for (const [, , pid] of batches) ids.add(pid)
  }
  assert.ok(ids.size === 1 && [...ids][0] >= 0n, `producer ids in the stored batches: ${[...ids]}`)
}
