import type {
	IDataObject,
	IHookFunctions,
	INodeType,
	INodeTypeDescription,
	IWebhookFunctions,
	IWebhookResponseData,
} from 'n8n-workflow';

import { stemhubRequest } from '../Stemhub/GenericFunctions';
import { verifyDelivery } from './signature';

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
			headers: Record<string, string | string[] | undefined>;
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
		const verdict = verifyDelivery(secret, request.headers, request.rawBody);
		if (!verdict.ok) {
			response.status(verdict.reason === 'replayed' ? 409 : 401).json({ error: verdict.reason });
			return { noWebhookResponse: true };
		}
		const event = this.getBodyData();
		return { workflowData: [this.helpers.returnJsonArray([event])] };
	}
}
