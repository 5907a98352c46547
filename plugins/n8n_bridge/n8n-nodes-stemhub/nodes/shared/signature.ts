import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a delivery's signed timestamp may be from now (Standard Webhooks' default). */
export const TOLERANCE_S = 300;

/**
 * The most delivery ids remembered at once. An id is kept only while a replay of its
 * delivery would pass the timestamp check (at most 2 * TOLERANCE_S, normally TOLERANCE_S:
 * the hub signs each attempt with its send time), so 1000 ids means 1000 finished jobs
 * within five minutes for one trigger, far beyond what a self-hosted hub splits. Nothing
 * is ever dropped early: when the memory is full a new delivery is refused (and the hub
 * retries it later), so the bound can never let a replay through.
 */
export const MAX_REMEMBERED = 1000;

/** Longer ids are refused, which bounds the memory's size in bytes too (hub ids have 28). */
const MAX_ID_LENGTH = 128;

/**
 * Accepted delivery ids, each with the unix time (seconds) after which a replay of that
 * delivery is stale anyway: a plain JSON object, so that it can live in n8n's static data.
 */
export type DeliveryMemory = Record<string, number>;

export type Refusal = 'malformed' | 'forged' | 'stale' | 'replayed' | 'full';

export type Verdict =
	| { ok: true; id: string; stamp: number }
	| { ok: false; reason: Refusal; retryAfterS?: number };

/** The HMAC key of a ``whsec_<base64>`` secret. */
function keyOf(secret: string): Buffer {
	return Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
}

function remembered(memory: DeliveryMemory, id: string, now: number): boolean {
	if (!Object.hasOwn(memory, id)) return false;
	const expires = memory[id];
	return typeof expires === 'number' && expires >= now;
}

export type DeliveryHeaders = Record<string, string | string[] | undefined>;

/**
 * The Standard Webhooks checks that need no memory: the signature over
 * "id.timestamp.body" (the raw bytes, never a re-serialised body) and a timestamp within
 * TOLERANCE_S of now. On its own it lets a replay through within that window: callers that
 * must refuse one remember ids (verifyDelivery) or accept each message only once for
 * another reason (a waiting execution resumes only once).
 */
export function verifySignature(
	secret: string,
	headers: DeliveryHeaders,
	rawBody: Buffer,
	now: number = Date.now() / 1000,
): Verdict {
	const header = (name: string) => {
		const value = headers[name];
		return Array.isArray(value) ? value[0] : value;
	};
	const id = header('webhook-id');
	const stamp = header('webhook-timestamp');
	const signatures = header('webhook-signature');
	if (!id || !stamp || !signatures || !/^\d+$/.test(stamp)) {
		return { ok: false, reason: 'malformed' };
	}
	// `__proto__` cannot be stored as a key of a plain object by assignment.
	if (id.length > MAX_ID_LENGTH || id === '__proto__') return { ok: false, reason: 'malformed' };
	const signed = Buffer.concat([Buffer.from(`${id}.${stamp}.`), rawBody]);
	const expected = createHmac('sha256', keyOf(secret)).update(signed).digest();
	const matches = signatures.split(' ').some((part) => {
		const [version, value] = part.split(',', 2);
		if (version !== 'v1' || !value) return false;
		const given = Buffer.from(value, 'base64');
		return given.length === expected.length && timingSafeEqual(given, expected);
	});
	if (!matches) return { ok: false, reason: 'forged' };
	if (Math.abs(now - Number(stamp)) > TOLERANCE_S) return { ok: false, reason: 'stale' };
	return { ok: true, id, stamp: Number(stamp) };
}

/**
 * verifySignature, then an id not in `memory`.
 *
 * Only an accepted delivery changes `memory`: its expired ids are dropped and its own id is
 * added, to expire at its signed timestamp + TOLERANCE_S, the last moment at which the
 * same signed message passes the timestamp check. Both that check and the pruning compare
 * the signed timestamp with the clock of the process doing them, so a replay to another
 * n8n process with a skewed clock finds the id until it is stale there too. A refused
 * delivery (anyone can send one) leaves `memory` untouched, so it never makes n8n save
 * the static data, whose stale snapshot could overwrite an id saved meanwhile.
 */
export function verifyDelivery(
	secret: string,
	headers: DeliveryHeaders,
	rawBody: Buffer,
	memory: DeliveryMemory,
	now: number = Date.now() / 1000,
): Verdict {
	const signed = verifySignature(secret, headers, rawBody, now);
	if (!signed.ok) return signed;
	const { id } = signed;
	if (remembered(memory, id, now)) return { ok: false, reason: 'replayed' };
	const live = new Set(Object.keys(memory).filter((key) => remembered(memory, key, now)));
	if (live.size >= MAX_REMEMBERED) {
		const soonest = Math.min(...[...live].map((key) => memory[key]));
		return { ok: false, reason: 'full', retryAfterS: Math.max(1, Math.ceil(soonest - now)) };
	}
	for (const key of Object.keys(memory)) {
		if (!live.has(key)) delete memory[key];
	}
	memory[id] = signed.stamp + TOLERANCE_S;
	return signed;
}
