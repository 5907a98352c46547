import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import {
	type DeliveryMemory,
	MAX_REMEMBERED,
	TOLERANCE_S,
	verifyDelivery,
} from '../nodes/shared/signature';
import { signWith } from './sign';

const secret = 'whsec_' + Buffer.from('a test key of some length').toString('base64');
const body = '{"type":"job.completed","data":{"id":"j1"}}';

function sign(id: string, stamp: number, text: string = body): Record<string, string> {
	return signWith(secret, id, text, stamp);
}

function verify(headers: Record<string, string>, memory: DeliveryMemory, now: number) {
	return verifyDelivery(secret, headers, Buffer.from(body), memory, now);
}

const now = 1_800_000_000;

test('a signed, fresh, first delivery passes; forged, stale and replayed ones do not', () => {
	const memory: DeliveryMemory = {};
	const headers = sign('msg_1', now);
	assert.deepEqual(verify(headers, memory, now), { ok: true, id: 'msg_1', stamp: now });
	assert.deepEqual(verify(headers, memory, now), { ok: false, reason: 'replayed' });
	const forged = sign('msg_2', now, body.replace('j1', 'j2'));
	assert.deepEqual(verify(forged, memory, now), { ok: false, reason: 'forged' });
	const old = sign('msg_3', now - 600);
	assert.deepEqual(verify(old, memory, now), { ok: false, reason: 'stale' });
	assert.deepEqual(verify({}, memory, now), { ok: false, reason: 'malformed' });
	assert.deepEqual(verify(sign('__proto__', now), memory, now), { ok: false, reason: 'malformed' });
});

test('the memory survives a JSON round trip, as n8n saves and reloads static data', () => {
	const first: DeliveryMemory = {};
	const headers = sign('msg_1', now);
	assert.equal(verify(headers, first, now).ok, true);
	const reloaded = JSON.parse(JSON.stringify(first)) as DeliveryMemory;
	assert.deepEqual(verify(headers, reloaded, now + 1), { ok: false, reason: 'replayed' });
	// Kept until the last moment the same signed message passes the timestamp check.
	assert.deepEqual(verify(headers, reloaded, now + TOLERANCE_S), { ok: false, reason: 'replayed' });
	assert.deepEqual(verify(headers, reloaded, now + TOLERANCE_S + 1), { ok: false, reason: 'stale' });
});

test('an accepted delivery prunes the ids whose replays are stale by now', () => {
	const memory: DeliveryMemory = {};
	assert.equal(verify(sign('msg_old', now), memory, now).ok, true);
	assert.equal(verify(sign('msg_recent', now + 200), memory, now + 200).ok, true);
	const later = now + TOLERANCE_S + 1;
	assert.equal(verify(sign('msg_new', later), memory, later).ok, true);
	assert.deepEqual(Object.keys(memory).sort(), ['msg_new', 'msg_recent']);
	assert.equal(memory.msg_new, later + TOLERANCE_S);
});

test('refused deliveries leave the memory as it was, expired ids included', () => {
	const memory: DeliveryMemory = { msg_expired: now - 1, msg_1: now + 100 };
	const before = JSON.stringify(memory);
	const refusals: Record<string, string>[] = [
		sign('msg_1', now), // replayed
		sign('msg_2', now - 600), // stale
		{ ...sign('msg_3', now), 'webhook-signature': sign('msg_3', now, '{}')['webhook-signature'] },
		{ ...sign('msg_4', now), 'webhook-signature': 'v1,AAAA' },
		{ 'webhook-id': 'msg_5', 'webhook-timestamp': 'soon', 'webhook-signature': 'v1,AAAA' },
	];
	for (const headers of refusals) {
		assert.equal(verify(headers, memory, now).ok, false);
		assert.equal(JSON.stringify(memory), before);
	}
});

test('a full memory refuses new ids until one expires, and never forgets one early', () => {
	const memory: DeliveryMemory = {};
	assert.equal(verify(sign('msg_0', now - 10), memory, now).ok, true);
	for (let i = 1; i < MAX_REMEMBERED; i++) {
		assert.equal(verify(sign(`msg_${i}`, now), memory, now).ok, true);
	}
	assert.deepEqual(verify(sign('msg_next', now + 5), memory, now + 5), {
		ok: false,
		reason: 'full',
		retryAfterS: TOLERANCE_S - 15,
	});
	assert.equal(Object.keys(memory).length, MAX_REMEMBERED);
	assert.deepEqual(verify(sign('msg_0', now - 10), memory, now + 5), {
		ok: false,
		reason: 'replayed',
	});
	// msg_0 is stale once its timestamp + TOLERANCE_S has passed: room for one more.
	const later = now - 10 + TOLERANCE_S + 1;
	assert.deepEqual(verify(sign('msg_next', later), memory, later), { ok: true, id: 'msg_next', stamp: later });
	assert.equal(Object.keys(memory).length, MAX_REMEMBERED);
	assert.equal('msg_0' in memory, false);
	assert.equal('msg_1' in memory, true);
});
