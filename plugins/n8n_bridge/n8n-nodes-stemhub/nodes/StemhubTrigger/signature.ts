import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a delivery's signed timestamp may be from now (Standard Webhooks' default). */
export const TOLERANCE_S = 300;

const seen = new Map<string, number>();

/** The HMAC key of a ``whsec_<base64>`` secret. */
function keyOf(secret: string): Buffer {
	return Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
}

export type Verdict = { ok: true; id: string } | { ok: false; reason: string };

/**
 * Standard Webhooks verification of one delivery: the signature over
 * "id.timestamp.body" (the raw bytes, never a re-serialised body), a timestamp within
 * TOLERANCE_S of now, and an id not accepted before in this process within twice that.
 */
export function verifyDelivery(
	secret: string,
	headers: Record<string, string | string[] | undefined>,
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
	for (const [key, expires] of seen) {
		if (expires < now) seen.delete(key);
	}
	if (seen.has(id)) return { ok: false, reason: 'replayed' };
	seen.set(id, now + 2 * TOLERANCE_S);
	return { ok: true, id };
}

/** Let an id through again (the workflow could not be started for it). */
export function forget(id: string): void {
	seen.delete(id);
}
