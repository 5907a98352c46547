/**
 * The Stemhub Trigger's webhook as n8n 2.8 runs it (LiveWebhooks.executeWebhook): each
 * request builds a `Workflow` (n8n-workflow's own class) with the static data read from the
 * database, and saves the static data afterwards if it changed. `N8nDatabase` is that
 * database row; loading a workflow from it is what a restarted n8n, or another webhook
 * process in queue mode, does.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { type IDataObject, type IWebhookFunctions, type IWebhookResponseData, Workflow } from 'n8n-workflow';

import { StemhubTrigger } from '../nodes/StemhubTrigger/StemhubTrigger.node';
import { type Answered, recordingResponse } from './response';
import { signWith } from './sign';

const secret = 'whsec_' + Buffer.from('the hook secret of this test').toString('base64');
const NODE = { name: 'Stemhub Trigger' };

function sign(id: string, body: string): Record<string, string> {
	return signWith(secret, id, body);
}

type Answer = Answered & { headers: Record<string, string>; ran: boolean };

class N8nDatabase {
	saved: string;

	constructor(readonly workflowId: string) {
		this.saved = JSON.stringify({ [`node:${NODE.name}`]: { hookId: 'hook_1', secret } });
	}

	load(): Workflow {
		return new Workflow({
			id: this.workflowId,
			nodes: [],
			connections: {},
			active: true,
			nodeTypes: { getByNameAndVersion: () => undefined } as never,
			staticData: JSON.parse(this.saved) as IDataObject,
		});
	}

	save(workflow: Workflow): void {
		if (workflow.staticData.__dataChanged === true) this.saved = JSON.stringify(workflow.staticData);
	}

	deliveries(): Record<string, number> {
		const data = JSON.parse(this.saved) as Record<string, IDataObject>;
		return (data[`node:${NODE.name}`].deliveries ?? {}) as Record<string, number>;
	}
}

async function webhook(workflow: Workflow, headers: Record<string, string>, body: string) {
	const answer: Answer = { headers: {}, ran: false };
	const response = recordingResponse(answer);
	const context = {
		getRequestObject: () => ({ headers, rawBody: Buffer.from(body) }),
		getResponseObject: () => response,
		getWorkflowStaticData: (type: string) => workflow.getStaticData(type, NODE as never),
		getCredentials: async () => ({}),
		getBodyData: () => JSON.parse(body) as IDataObject,
		getWorkflow: () => ({ id: workflow.id, name: 'on job completed', active: true }),
		getNode: () => NODE,
		helpers: { returnJsonArray: (items: IDataObject[]) => items.map((json) => ({ json })) },
	};
	const result: IWebhookResponseData = await new StemhubTrigger().webhook.call(
		context as unknown as IWebhookFunctions,
	);
	answer.ran = result.workflowData !== undefined;
	return answer;
}

/** One webhook request the way n8n handles it: load, run the node, save. */
async function deliver(db: N8nDatabase, headers: Record<string, string>, body: string) {
	const workflow = db.load();
	const answer = await webhook(workflow, headers, body);
	db.save(workflow);
	return answer;
}

const body = '{"type":"job.completed","data":{"id":"j1"}}';

test('a delivery replayed after a restart or to another webhook process runs nothing', async () => {
	const db = new N8nDatabase('wf_restart');
	const headers = sign('msg_restart', body);
	const first = await deliver(db, headers, body);
	assert.equal(first.status, undefined);
	assert.equal(first.ran, true);
	assert.deepEqual(Object.keys(db.deliveries()), ['msg_restart']);

	// A fresh n8n reads the saved row: the replay is answered as received (so the hub stops
	// retrying it) and nothing runs.
	const replay = await deliver(db, headers, body);
	assert.deepEqual(
		[replay.status, replay.body, replay.ran],
		[200, { received: true, duplicate: true }, false],
	);
	const other = await deliver(db, sign('msg_other', body), body);
	assert.equal(other.ran, true);
	assert.deepEqual(Object.keys(db.deliveries()).sort(), ['msg_other', 'msg_restart']);
});

test('a replay processed at the same time as its original is refused in the same process', async () => {
	const db = new N8nDatabase('wf_concurrent');
	const headers = sign('msg_race', body);
	// Both requests read the row before either has saved it.
	const [one, two] = [db.load(), db.load()];
	const first = await webhook(one, headers, body);
	const second = await webhook(two, headers, body);
	db.save(one);
	db.save(two);
	assert.equal(first.ran, true);
	assert.deepEqual([second.status, second.body, second.ran], [503, { error: 'in flight' }, false]);
	assert.ok(Number(second.headers['retry-after']) > 0);
	assert.deepEqual(Object.keys(db.deliveries()), ['msg_race'], 'the refusal did not drop the id');
});

test('a forged delivery changes nothing n8n would save', async () => {
	const db = new N8nDatabase('wf_forged');
	const before = db.saved;
	const headers = { ...sign('msg_forged', body), 'webhook-signature': 'v1,AAAA' };
	const workflow = db.load();
	const answer = await webhook(workflow, headers, body);
	assert.deepEqual([answer.status, answer.ran], [401, false]);
	assert.equal(workflow.staticData.__dataChanged, false);
	db.save(workflow);
	assert.equal(db.saved, before);
});
