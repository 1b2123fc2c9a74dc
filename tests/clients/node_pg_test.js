// node-postgres against crmdb serve: parameterised (extended protocol) query.
// Usage: node node_pg_test.js HOST PORT PASSWORD; prints OK.
const { Client } = require('pg');
const assert = require('assert');
const [host, port, password] = process.argv.slice(2);
(async () => {
  const client = new Client({ host, port: Number(port), user: 'analyst', password, database: 'crm', ssl: false });
  await client.connect();
  const res = await client.query('SELECT order_id, amount::text AS amount FROM orders WHERE customer_id = $1 ORDER BY order_id', [1]);
  // int8 arrives as a string in node-postgres' text mode
  assert.deepStrictEqual(res.rows, [{ order_id: '10', amount: '120.50' }, { order_id: '11', amount: '80.00' }]);
  const v = await client.query('SHOW server_version');
  assert.strictEqual(v.rows[0].server_version, '16.6 (crmdb 0.1.0)');
  await client.end();
  console.log('OK');
})().catch((e) => { console.error(e); process.exit(1); });
