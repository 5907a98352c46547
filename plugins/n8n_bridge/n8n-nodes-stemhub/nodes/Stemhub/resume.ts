import type {
	IDataObject,
	IExecuteFunctions,
	INode,
	IWebhookDescription,
	IWebhookFunctions,
	IWebhookResponseData,
} from 'n8n-workflow';
import { NodeOperationError } from 'n8n-workflow';

import { type DeliveryHeaders, verifySignature } from '../shared/signature';
import { stemhubRequest } from './GenericFunctions';

/*
 * "Wait for Completion" the way n8n's Wait node does "Resume: On Webhook Call": the job is
 * submitted with the execution's resume URL as its callback, the execution is saved as
 * waiting (no worker is held), and the hub's signed job.completed / job.failed delivery to
 * that URL resumes it. How n8n 2.8 (plugins/n8n_bridge/n8n-runtime) resumes one
 * (WaitingWebhooks.getWebhookExecutionData, WebhookHelpers.executeWebhook,
 * WorkflowExecute.handleWaitingState):
 *
 * - A POST to /webhook-waiting/<executionId> runs this node's webhook(). A webhook() that
 *   answers the request itself and returns no workflowData runs nothing: the execution
 *   stays saved as waiting. n8n accepts that POST from anyone and execution ids are
 *   sequential, so everything that does not prove it is the hub's delivery for this
 *   execution's job is refused that way.
 * - When webhook() returns workflowData, the execution goes on from this node with that
 *   data as the node's output; execute() does not run again. So webhook() reads the job
 *   from the hub with the API key (never a link from the body) and outputs it.
 * - When webhook() throws, n8n answers the delivery 500 (the hub's retry then gets 409 and
 *   stops), records the error as the execution's error at this node and ends it with
 *   status "error" and the hub's message. It also drops the run data of the nodes before
 *   this one and hands one empty item to the nodes after it (they run), which is why the
 *   README suggests "On Error: Continue" for workflows that must branch on a failed split.
 * - When the wait-till date passes first, n8n resumes the execution without calling any
 *   code of this node and passes the node's input on, as its Wait node does at "Limit Wait
 *   Time": no node can fail the execution then. waitForJob therefore makes that input one
 *   item that says the job did not finish in time, so the nodes after this one see that
 *   instead of the song they were given. (A hard error at that moment needs a caller: a
 *   per-job deadline on the hub that fails the job and so sends job.failed in time.)
 */

/** The execution's custom data key that holds the id of the job it waits for. */
export const WAITING_JOB_KEY = 'stemhubJob';

/** How long the first request lets the hub hold the answer: short jobs end within it. */
export const FIRST_WAIT_S = 3;

const EVENTS = ['job.completed', 'job.failed'];

/** The resume webhook: n8n routes /webhook-waiting/<executionId> POSTs to webhook(). */
export const RESUME_WEBHOOK: IWebhookDescription = {
	name: 'default',
	httpMethod: 'POST',
	responseMode: 'onReceived',
	path: '',
	restartWebhook: true,
};

/** The job as the node outputs it, or the error that a failed, expired or cancelled job is. */
export function finishedJob(node: INode, job: IDataObject, itemIndex = 0): IDataObject {
	if (job.status === 'completed') return job;
	const error = (job.error ?? {}) as IDataObject;
	throw new NodeOperationError(
		node,
		`The hub could not split the song: ${String(error.message ?? job.status)}`,
		{ description: `stemhub error ${String(error.code ?? job.status)}`, itemIndex },
	);
}

/** Whether the node is set to go on after an error ("On Error" other than "Stop Workflow"). */
function continuesOnFail(node: INode): boolean {
	return node.continueOnFail === true || (node.onError ?? 'stopWorkflow') !== 'stopWorkflow';
}

/** The job id recorded by waitForJob in this execution, as webhook() reads it back. */
function waitingJob(context: IExecuteFunctions | IWebhookFunctions): unknown {
	return context.evaluateExpression(`{{ $execution.customData.get("${WAITING_JOB_KEY}") }}`, 0);
}

/**
 * Record `job` as the one this execution waits for and put the execution to wait until a
 * delivery resumes it, or until `maxWaitMinutes` pass. The input that n8n passes on if
 * the wait-till date comes first becomes one item saying so: `error` (the reason) and
 * `job` (the job as submitted), the shape of an item that failed with "On Error: Continue".
 * That input is the execute data of this node's run, which n8n saves with the waiting
 * execution and hands back unchanged at the wait-till date.
 */
export async function waitForJob(
	this: IExecuteFunctions,
	job: IDataObject,
	maxWaitMinutes: number,
): Promise<void> {
	const id = String(job.id);
	this.getWorkflowDataProxy(0).$execution.customData.set(WAITING_JOB_KEY, id);
	if (waitingJob(this) !== id) {
		throw new NodeOperationError(this.getNode(), 'n8n could not record the job to wait for', {
			description: `The execution's custom data is full (n8n keeps 10 keys); free "${WAITING_JOB_KEY}"`,
		});
	}
	const error = `Job ${id} did not finish within "Max Wait" (${maxWaitMinutes} min)`;
	this.getExecuteData().data = { main: [[{ json: { error, job }, pairedItem: { item: 0 } }]] };
	await this.putExecutionToWait(new Date(Date.now() + maxWaitMinutes * 60_000));
}

/**
 * The resume URL's webhook: resume the execution with the finished job only for a
 * delivery that the credential's webhook secret signed, recently, about the job this
 * execution waits for; answer anything else and keep waiting.
 */
export async function resumeOnDelivery(this: IWebhookFunctions): Promise<IWebhookResponseData> {
	const request = this.getRequestObject() as unknown as { rawBody?: Buffer; headers: DeliveryHeaders };
	const response = this.getResponseObject();
	const answer = (status: number, body: IDataObject): IWebhookResponseData => {
		response.status(status).json(body);
		return { noWebhookResponse: true };
	};
	const secret = (await this.getCredentials('stemhubApi')).webhookSecret as string | undefined;
	if (!secret || !request.rawBody) {
		return answer(401, { error: 'no signing secret or body to verify' });
	}
	const verdict = verifySignature(secret, request.headers, request.rawBody);
	if (!verdict.ok) return answer(401, { error: verdict.reason });
	let event: IDataObject;
	try {
		event = JSON.parse(request.rawBody.toString('utf8')) as IDataObject;
	} catch {
		return answer(400, { error: 'the body is not JSON' });
	}
	const id = ((event?.data ?? {}) as IDataObject).id;
	if (!EVENTS.includes(String(event?.type)) || typeof id !== 'string') {
		return answer(400, { error: 'not a job.completed or job.failed event' });
	}
	if (id !== waitingJob(this)) return answer(403, { error: 'not the job this execution waits for' });
	let job: IDataObject;
	try {
		job = (await stemhubRequest.call(this, 'GET', `/v1/jobs/${encodeURIComponent(id)}`))
			.body as IDataObject;
	} catch (error) {
		// the hub retries a delivery answered 5xx; the execution keeps waiting meanwhile
		return answer(503, { error: `could not read the job: ${(error as Error).message}` });
	}
	if (!job.finished) return answer(200, { received: true, waiting: true });
	const node = this.getNode();
	try {
		return { workflowData: [[{ json: finishedJob(node, job) }]] };
	} catch (error) {
		if (!continuesOnFail(node)) throw error;
		return { workflowData: [[{ json: { error: (error as Error).message, job } }]] };
	}
}
