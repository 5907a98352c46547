import { strict as assert } from 'node:assert';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';

import { verifyDelivery } from '../nodes/StemhubTrigger/signature';

const secret = 'whsec_' + Buffer.from('a test key of some length').toString('base64');

function sign(id: string, stamp: number, body: string): Record<string, string> {
	const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
	const mac = createHmac('sha256', key).update(`${id}.${stamp}.${body}`).digest('base64');
	return { 'webhook-id': id, 'webhook-timestamp': String(stamp), 'webhook-signature': `v1,${mac}` };
}

test('a signed, fresh, first delivery passes; forged, stale and replayed ones do not', () => {
	const now = 1_800_000_000;
	const body = '{"type":"job.completed","data":{"id":"j1"}}';
	const headers = sign('msg_1', now, body);
	assert.deepEqual(verifyDelivery(secret, headers, Buffer.from(body), now), { ok: true, id: 'msg_1' });
	assert.deepEqual(verifyDelivery(secret, headers, Buffer.from(body), now), { ok: false, reason: 'replayed' });
	const forged = sign('msg_2', now, body.replace('j1', 'j2'));
	assert.deepEqual(verifyDelivery(secret, forged, Buffer.from(body), now), { ok: false, reason: 'forged' });
	const old = sign('msg_3', now - 600, body);
	assert.deepEqual(verifyDelivery(secret, old, Buffer.from(body), now), { ok: false, reason: 'stale' });
	assert.deepEqual(verifyDelivery(secret, {}, Buffer.from(body), now), { ok: false, reason: 'malformed' });
});
