import type {
	IDataObject,
	IHookFunctions,
	INodeType,
	INodeTypeDescription,
	IWebhookFunctions,
	IWebhookResponseData,
} from 'n8n-workflow';

import { stemhubRequest } from '../Stemhub/GenericFunctions';
import { type DeliveryHeaders, type DeliveryMemory, verifyDelivery } from '../shared/signature';

/*
 * The replay memory lives in the node's workflow static data (`deliveries`: id -> unix
 * time after which a replay is stale anyway), so a restart or another webhook process of
 * the same workflow (queue mode) refuses a replay too. How n8n 2.8 (the version that
 * plugins/n8n_bridge/n8n-runtime pins) treats static data, which its docs ask to keep
 * small (LiveWebhooks.executeWebhook, WorkflowStaticDataService.saveStaticData): every
 * webhook request builds the workflow afresh with the static data read from the database,
 * and once the response is decided saves it, if it changed: for an accepted delivery
 * right after the execution is started or queued, not after it ends. If the execution
 * cannot be started nothing is saved, so the hub's retry of that id is let through again.
 *
 * Limits: each request saves the whole static data as it read it, so two deliveries
 * processed at once do not see each other's id (a replay racing its original), and the
 * snapshot saved last drops the id of the other. Within one process `accepting` closes
 * both: it holds each id this process accepted until the id is stale, and a delivery of
 * a held id is answered 503 (retry later; nothing runs). Across processes, and after a
 * restart, the window from read to save (milliseconds) stays open, and an id dropped by a
 * concurrent save is known only to the `accepting` of the process that accepted it.
 */
const accepting = new Map<string, number>();
const MAX_HELD = 10_000;

function hold(key: string, until: number, now: number): number | undefined {
	for (const [held, expires] of accepting) {
		if (expires < now || accepting.size > MAX_HELD) accepting.delete(held);
	}
	const held = accepting.get(key);
	if (held !== undefined) return held;
	accepting.set(key, until);
	return undefined;
}

export class StemhubTrigger implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Stemhub Trigger',
		name: 'stemhubTrigger',
		icon: 'file:stemhub.svg',
		group: ['trigger'],
		version: 1,
		subtitle: '={{$parameter["events"].join(", ")}}',
		description: 'Starts the workflow when a stemhub job finishes',
		defaults: { name: 'Stemhub Trigger' },
		inputs: [],
		outputs: ['main'],
		credentials: [{ name: 'stemhubApi', required: true }],
		webhooks: [
			{
				name: 'default',
				httpMethod: 'POST',
				responseMode: 'onReceived',
				path: 'webhook',
			},
		],
		properties: [
			{
				displayName: 'Events',
				name: 'events',
				type: 'multiOptions',
				required: true,
				options: [
					{ name: 'Job Completed', value: 'job.completed' },
					{ name: 'Job Failed', value: 'job.failed' },
				],
				default: ['job.completed', 'job.failed'],
			},
		],
	};

	webhookMethods = {
		default: {
			async checkExists(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node');
				if (!data.hookId) return false;
				try {
					const response = await stemhubRequest.call(this, 'GET', `/v1/hooks/${String(data.hookId)}`);
					const hook = response.body as IDataObject;
					if (hook.active && hook.target_url === this.getNodeWebhookUrl('default')) return true;
				} catch {
					// gone or unreachable: subscribe again
				}
				delete data.hookId;
				delete data.secret;
				return false;
			},
			async create(this: IHookFunctions): Promise<boolean> {
				const body = {
					target_url: this.getNodeWebhookUrl('default'),
					events: this.getNodeParameter('events') as string[],
				};
				const response = await stemhubRequest.call(this, 'POST', '/v1/hooks', { body });
				const hook = response.body as IDataObject;
				const data = this.getWorkflowStaticData('node');
				data.hookId = hook.id;
				data.secret = hook.secret;
				return true;
			},
			async delete(this: IHookFunctions): Promise<boolean> {
				const data = this.getWorkflowStaticData('node');
				if (data.hookId) {
					try {
						await stemhubRequest.call(this, 'DELETE', `/v1/hooks/${String(data.hookId)}`);
					} catch {
						// already gone on the hub
					}
				}
				delete data.hookId;
				delete data.secret;
				return true;
			},
		},
	};

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const request = this.getRequestObject() as unknown as {
			rawBody?: Buffer;
			headers: DeliveryHeaders;
		};
		const data = this.getWorkflowStaticData('node');
		const secret =
			(data.secret as string | undefined) ??
			((await this.getCredentials('stemhubApi')).webhookSecret as string | undefined);
		const response = this.getResponseObject();
		if (!secret || !request.rawBody) {
			response.status(401).json({ error: 'no signing secret or body to verify' });
			return { noWebhookResponse: true };
		}
		const now = Date.now() / 1000;
		const stored = data.deliveries;
		const draft: DeliveryMemory =
			typeof stored === 'object' && stored !== null ? { ...(stored as DeliveryMemory) } : {};
		const verdict = verifyDelivery(secret, request.headers, request.rawBody, draft, now);
		if (!verdict.ok) {
			if (verdict.retryAfterS !== undefined) {
				response.setHeader('Retry-After', String(verdict.retryAfterS));
			}
			if (verdict.reason === 'replayed') {
				// a success that runs nothing: the hub retries a delivery whose 2xx it never got
				// (same id, new timestamp), and a refusal would keep it retrying until the id
				// expires here, when the next retry would run the workflow a second time
				response.status(200).json({ received: true, duplicate: true });
				return { noWebhookResponse: true };
			}
			response.status(verdict.reason === 'full' ? 503 : 401).json({ error: verdict.reason });
			return { noWebhookResponse: true };
		}
		const key = JSON.stringify([this.getWorkflow().id, this.getNode().name, verdict.id]);
		const held = hold(key, draft[verdict.id], now);
		if (held !== undefined) {
			response.setHeader('Retry-After', String(Math.max(1, Math.ceil(held - now))));
			response.status(503).json({ error: 'in flight' });
			return { noWebhookResponse: true };
		}
		data.deliveries = draft;
		const event = this.getBodyData();
		return { workflowData: [this.helpers.returnJsonArray([event])] };
	}
}
