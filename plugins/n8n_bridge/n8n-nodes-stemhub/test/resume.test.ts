/**
 * The Stemhub node's resume webhook (Split with "Wait for Completion") with a stand-in for
 * n8n's webhook context: what each POST to the execution's resume URL is answered, whether
 * it resumes the execution (returns workflowData), and what the node then outputs. The
 * real n8n runs it in tests/bridge/test_real_n8n.py.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import type { IDataObject, IHttpRequestOptions, INode, IWebhookFunctions } from 'n8n-workflow';

import { Stemhub } from '../nodes/Stemhub/Stemhub.node';
import { type Answered, recordingResponse } from './response';
import { signWith } from './sign';

const secret = 'whsec_' + Buffer.from('the key secret of this test').toString('base64');
const HUB = 'http://hub.test';

interface Call extends Answered {
	requests: IHttpRequestOptions[];
}

/** The job as GET /v1/jobs/{id} answers it (the hub's word, not the delivery's). */
function hubJob(id: string, status: string): IDataObject {
	const finished = status !== 'running';
	return {
		id,
		status,
		finished,
		stems: status === 'completed' ? { vocals: { download_url: `${HUB}/v1/jobs/${id}/stems/vocals` } } : {},
		error: status === 'failed' ? { code: 'SOURCE_UNREACHABLE', message: 'The song could not be downloaded.' } : null,
	};
}

async function deliver(
	body: IDataObject,
	options: { headers?: Record<string, string>; waiting?: string; hub?: IDataObject; node?: Partial<INode> } = {},
) {
	const raw = JSON.stringify(body);
	const headers = options.headers ?? signWith(secret, 'msg_1', raw);
	const call: Call = { requests: [] };
	const response = recordingResponse(call);
	const node = { name: 'Split', type: 'CUSTOM.stemhub', ...options.node } as INode;
	const context = {
		getRequestObject: () => ({ headers, rawBody: Buffer.from(raw) }),
		getResponseObject: () => response,
		getCredentials: async () => ({ hubUrl: HUB, apiKey: 'sk_live_x', webhookSecret: secret }),
		getNode: () => node,
		evaluateExpression: (expression: string) =>
			expression.includes('$execution.customData.get("stemhubJob")') ? (options.waiting ?? 'job_1') : undefined,
		helpers: {
			async httpRequestWithAuthentication(credential: string, request: IHttpRequestOptions) {
				assert.equal(credential, 'stemhubApi');
				call.requests.push(request);
				if (options.hub === undefined) throw new Error('connect ECONNREFUSED');
				return { statusCode: 200, headers: {}, body: options.hub };
			},
		},
	};
	const result = await new Stemhub().webhook.call(context as unknown as IWebhookFunctions);
	return { ...call, resumed: result.workflowData };
}

const completed = (id = 'job_1') => ({
	type: 'job.completed',
	data: { id, status: 'completed', stems: { vocals: { download_url: 'http://thief.test/steal' } } },
});

test('a delivery signed with the key secret for the waiting job resumes with the hub job', async () => {
	const call = await deliver(completed(), { hub: hubJob('job_1', 'completed') });
	assert.deepEqual(call.resumed, [[{ json: hubJob('job_1', 'completed') }]]);
	assert.equal(call.requests.length, 1);
	assert.equal(call.requests[0].url, `${HUB}/v1/jobs/job_1`);
	assert.equal(call.status, undefined, 'n8n answers the delivery itself');
});

test('a forged, unsigned or stale delivery keeps the execution waiting and asks nobody', async () => {
	const raw = JSON.stringify(completed());
	const forged = { ...signWith(secret, 'msg_1', raw), 'webhook-signature': 'v1,AAAA' };
	const otherKey = signWith('whsec_' + Buffer.from('another key').toString('base64'), 'msg_1', raw);
	const stale = signWith(secret, 'msg_1', raw, Math.floor(Date.now() / 1000) - 3600);
	for (const headers of [forged, otherKey, stale, {}]) {
		const call = await deliver(completed(), { headers, hub: hubJob('job_1', 'completed') });
		assert.deepEqual([call.status, call.resumed, call.requests], [401, undefined, []]);
	}
});

test('a signed delivery about another job is refused, and not read from the hub', async () => {
	const call = await deliver(completed('job_2'), { hub: hubJob('job_2', 'completed') });
	assert.deepEqual([call.status, call.resumed, call.requests], [403, undefined, []]);
});

test('a failed job fails the node with the hub message, unless it continues on fail', async () => {
	const failed = { type: 'job.failed', data: { id: 'job_1', status: 'failed' } };
	await assert.rejects(deliver(failed, { hub: hubJob('job_1', 'failed') }), (error: Error) => {
		assert.match(error.message, /could not split the song: The song could not be downloaded\./);
		return true;
	});
	const call = await deliver(failed, {
		hub: hubJob('job_1', 'failed'),
		node: { onError: 'continueRegularOutput' },
	});
	const item = call.resumed?.[0][0].json as IDataObject;
	assert.match(String(item.error), /The song could not be downloaded\./);
	assert.deepEqual(item.job, hubJob('job_1', 'failed'));
});

test('the hub out of reach or the job not finished there keeps the execution waiting', async () => {
	const unreachable = await deliver(completed());
	assert.deepEqual([unreachable.status, unreachable.resumed], [503, undefined]);
	const reopened = await deliver(completed(), { hub: hubJob('job_1', 'running') });
	assert.deepEqual([reopened.status, reopened.resumed], [200, undefined]);
});
