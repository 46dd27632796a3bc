// A node:test reporter writing one line per top-level test for compat-tests/run-clients.sh:
// `kafkajs:<test name><TAB>pass|fail|skip<TAB><file>`. Used beside the spec reporter:
//   node --test --test-reporter=spec --test-reporter-destination=stdout \
//        --test-reporter=./results-reporter.mjs --test-reporter-destination=RESULTS_FILE test/
const SCENARIO = /^[a-z0-9][a-z0-9-]*$/

export default async function* results(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue
    const { name, nesting, file, skip, todo } = event.data
    if (nesting !== 0 || !SCENARIO.test(name)) continue
    const outcome = event.type === 'test:fail' ? 'fail' : skip || todo ? 'skip' : 'pass'
    yield `kafkajs:${name}\t${outcome}\t${file ?? ''}\n`
  }
}
