import { createHmac } from 'node:crypto';

/** Standard Webhooks headers for `body`, as the hub signs a delivery with `secret`. */
export function signWith(
	secret: string,
	id: string,
	body: string,
	stamp: number = Math.floor(Date.now() / 1000),
): Record<string, string> {
	const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
	const mac = createHmac('sha256', key).update(`${id}.${stamp}.${body}`).digest('base64');
	return { 'webhook-id': id, 'webhook-timestamp': String(stamp), 'webhook-signature': `v1,${mac}` };
}
