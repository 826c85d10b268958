// kafkajs against a broker: node compat.js BOOTSTRAP SCENARIO [MECHANISM USERNAME PASSWORD]
// With MECHANISM (plain, scram-sha-256, scram-sha-512) it authenticates over SASL_PLAINTEXT.
// Scenarios: producer-group (produce 1,000 records, a consumer group reads them all),
// admin (create/list/fetch metadata/describe configs/delete topics, list groups).
// Prints "PASS <scenario>" or "FAIL <scenario>: <reason>".
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs');

const [bootstrap, scenario, mechanism, username, password] = process.argv.slice(2);
const sasl = mechanism ? { mechanism, username, password } : undefined;
const kafka = new Kafka({ clientId: 'rivulet-compat', brokers: [bootstrap], sasl, logLevel: logLevel.NOTHING });
const COUNT = 1000;

async function producerGroup() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'kafkajs-group', numPartitions: 3 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  const messages = Array.from({ length: COUNT }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
  for (let i = 0; i < COUNT; i += 100) {
    await producer.send({ topic: 'kafkajs-group', acks: -1, messages: messages.slice(i, i + 100) });
  }
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: 'kafkajs-g', sessionTimeout: 10000, rebalanceTimeout: 10000 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'kafkajs-group', fromBeginning: true });
  const seen = new Set();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${seen.size} of ${COUNT}`)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        seen.add(message.value.toString());
        if (seen.size === COUNT) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
}

async function adminScenario() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'kafkajs-admin', numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '60000' }] }] });
  const topics = await admin.listTopics();
  if (!topics.includes('kafkajs-admin')) throw new Error(`not listed: ${topics}`);
  const meta = await admin.fetchTopicMetadata({ topics: ['kafkajs-admin'] });
  if (meta.topics[0].partitions.length !== 2) throw new Error('wrong partition count');
  const configs = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: 'kafkajs-admin' }] });
  const retention = configs.resources[0].configEntries.find((c) => c.configName === 'retention.ms');
  if (!retention || retention.configValue !== '60000') throw new Error('retention.ms not described');
  const cluster = await admin.describeCluster();
  if (cluster.brokers.length !== 1) throw new Error('expected one broker');
  await admin.listGroups();
  await admin.deleteTopics({ topics: ['kafkajs-admin'] });
  await admin.disconnect();
}

const scenarios = { 'producer-group': producerGroup, admin: adminScenario };
(async () => {
  try {
    if (!scenarios[scenario]) throw new Error('unknown scenario');
    await scenarios[scenario]();
    console.log(`PASS ${scenario}`);
    process.exit(0);
  } catch (e) {
    console.log(`FAIL ${scenario}: ${e.message}`);
    process.exit(1);
  }
})();
