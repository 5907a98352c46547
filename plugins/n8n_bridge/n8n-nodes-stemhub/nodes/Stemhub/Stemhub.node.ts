import type {
	IDataObject,
	IExecuteFunctions,
	INodeExecutionData,
	INodeType,
	INodeTypeDescription,
	IWebhookFunctions,
	IWebhookResponseData,
} from 'n8n-workflow';
import { NodeOperationError } from 'n8n-workflow';

import { stemhubRequest } from './GenericFunctions';
import { FIRST_WAIT_S, RESUME_WEBHOOK, finishedJob, resumeOnDelivery, waitForJob } from './resume';

const STEM_SETS = [
	{ name: 'Vocals and Instrumental', value: 'BOTH' },
	{ name: 'Vocals Only', value: 'VOCALS' },
	{ name: 'Instrumental Only', value: 'INSTRUMENTAL' },
	{ name: 'Four Stems (Vocals, Drums, Bass, Other)', value: 'FOUR_STEMS' },
	{ name: 'Six Stems', value: 'SIX_STEMS' },
];

export class Stemhub implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Stemhub',
		name: 'stemhub',
		icon: 'file:stemhub.svg',
		group: ['transform'],
		version: 1,
		subtitle: '={{$parameter["operation"]}}',
		description: 'Split songs into stems on your stemhub and download them',
		defaults: { name: 'Stemhub' },
		inputs: ['main'],
		outputs: ['main'],
		usableAsTool: true,
		credentials: [{ name: 'stemhubApi', required: true }],
		webhooks: [RESUME_WEBHOOK],
		properties: [
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				options: [
					{ name: 'Download All Stems', value: 'downloadZip', action: 'Download all stems as a zip' },
					{ name: 'Download Stem', value: 'downloadStem', action: 'Download one stem' },
					{ name: 'Get Job', value: 'getJob', action: 'Get a job' },
					{ name: 'Split', value: 'split', action: 'Split a song into stems' },
				],
				default: 'split',
			},
			{
				displayName: 'Source',
				name: 'source',
				type: 'options',
				options: [
					{ name: 'Binary File', value: 'binary' },
					{ name: 'URL', value: 'url' },
				],
				default: 'binary',
				displayOptions: { show: { operation: ['split'] } },
			},
			{
				displayName: 'Input Binary Field',
				name: 'binaryPropertyName',
				type: 'string',
				default: 'data',
				required: true,
				hint: 'The name of the input binary field holding the song',
				displayOptions: { show: { operation: ['split'], source: ['binary'] } },
			},
			{
				displayName: 'URL',
				name: 'url',
				type: 'string',
				default: '',
				required: true,
				placeholder: 'https://example.com/song.mp3',
				displayOptions: { show: { operation: ['split'], source: ['url'] } },
			},
			{
				displayName: 'Stems',
				name: 'stems',
				type: 'options',
				options: STEM_SETS,
				default: 'BOTH',
				displayOptions: { show: { operation: ['split'] } },
			},
			{
				displayName: 'Output Format',
				name: 'outputFormat',
				type: 'options',
				options: [
					{ name: 'FLAC', value: 'FLAC' },
					{ name: 'MP3', value: 'MP3' },
					{ name: 'WAV', value: 'WAV' },
				],
				default: 'MP3',
				displayOptions: { show: { operation: ['split'] } },
			},
			{
				displayName: 'Quality',
				name: 'quality',
				type: 'options',
				options: [
					{ name: 'Balanced', value: 'BALANCED' },
					{ name: 'Best', value: 'BEST' },
					{ name: 'Fast', value: 'FAST' },
				],
				default: 'BALANCED',
				displayOptions: { show: { operation: ['split'] } },
			},
			{
				displayName: 'Wait for Completion',
				name: 'waitForCompletion',
				type: 'boolean',
				default: true,
				description:
					'Whether to output the finished job: the execution waits, holding no worker, until the hub calls back (needs the credential\'s webhook secret, and one input item per run: use Loop Over Items for several songs). Otherwise the queued job is output at once.',
				displayOptions: { show: { operation: ['split'] } },
			},
			{
				displayName: 'Max Wait (Minutes)',
				name: 'maxWaitMinutes',
				type: 'number',
				typeOptions: { minValue: 1, maxValue: 60 },
				default: 10,
				description:
					'How long the execution waits for the hub\'s callback; after that it goes on with one item whose "error" says the job did not finish',
				displayOptions: { show: { operation: ['split'], waitForCompletion: [true] } },
			},
			{
				displayName: 'Job ID',
				name: 'jobId',
				type: 'string',
				default: '={{ $json.id }}',
				required: true,
				displayOptions: { show: { operation: ['getJob', 'downloadStem', 'downloadZip'] } },
			},
			{
				displayName: 'Stem',
				name: 'stem',
				type: 'string',
				default: 'vocals',
				required: true,
				placeholder: 'vocals',
				description: 'The stem to download: vocals, instrumental, drums, bass, other, guitar or piano',
				displayOptions: { show: { operation: ['downloadStem'] } },
			},
			{
				displayName: 'Output Binary Field',
				name: 'outputBinaryPropertyName',
				type: 'string',
				default: 'data',
				required: true,
				displayOptions: { show: { operation: ['downloadStem', 'downloadZip'] } },
			},
		],
	};

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const items = this.getInputData();
		if (
			this.getNodeParameter('operation', 0) === 'split' &&
			(this.getNodeParameter('waitForCompletion', 0) as boolean)
		) {
			return [await splitAndWait.call(this, items.length)];
		}
		const out: INodeExecutionData[] = [];
		for (let i = 0; i < items.length; i++) {
			try {
				const operation = this.getNodeParameter('operation', i) as string;
				if (operation === 'split') {
					out.push({ json: await split.call(this, i, { wait: 0 }), pairedItem: { item: i } });
				} else if (operation === 'getJob') {
					const jobId = encodeURIComponent(this.getNodeParameter('jobId', i) as string);
					const response = await stemhubRequest.call(this, 'GET', `/v1/jobs/${jobId}`);
					out.push({ json: response.body as IDataObject, pairedItem: { item: i } });
				} else {
					out.push(await download.call(this, i, operation === 'downloadZip'));
				}
			} catch (error) {
				if (this.continueOnFail()) {
					out.push({ json: { error: (error as Error).message }, pairedItem: { item: i } });
					continue;
				}
				throw error;
			}
		}
		return [out];
	}

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		return await resumeOnDelivery.call(this);
	}
}

/**
 * Split with "Wait for Completion": submit the song with the execution's resume URL as
 * the job's callback and wait for it without holding a worker (see resume.ts). One item per
 * run, as n8n resumes a waiting execution once.
 */
async function splitAndWait(this: IExecuteFunctions, count: number): Promise<INodeExecutionData[]> {
	try {
		if (count !== 1) {
			throw new NodeOperationError(
				this.getNode(),
				`Wait for Completion splits one song per run of this node, and it got ${count} items`,
				{
					description:
						'Put a "Loop Over Items" node (batch size 1) before this node, or turn "Wait for Completion" off and use the Stemhub Trigger node',
				},
			);
		}
		if (!(await this.getCredentials('stemhubApi')).webhookSecret) {
			throw new NodeOperationError(this.getNode(), 'Wait for Completion needs a webhook secret', {
				description:
					'Fill in "Webhook Secret" in the Stemhub API credential: "stemhub keys webhook-secret <key id>" prints it',
			});
		}
		const callback = this.evaluateExpression('{{ $execution.resumeUrl }}', 0) as string;
		const job = await split.call(this, 0, { wait: FIRST_WAIT_S, callback_url: callback });
		if (job.finished) return [{ json: finishedJob(this.getNode(), job), pairedItem: { item: 0 } }];
		await waitForJob.call(this, job, this.getNodeParameter('maxWaitMinutes', 0) as number);
		return [{ json: job, pairedItem: { item: 0 } }];
	} catch (error) {
		if (!this.continueOnFail()) throw error;
		return [{ json: { error: (error as Error).message }, pairedItem: { item: 0 } }];
	}
}

/** Submit item `i`'s song; `extra` adds `/v1/split` options (`wait`, `callback_url`). */
async function split(this: IExecuteFunctions, i: number, extra: IDataObject): Promise<IDataObject> {
	const qs: IDataObject = {
		stems: this.getNodeParameter('stems', i),
		output_format: this.getNodeParameter('outputFormat', i),
		quality: this.getNodeParameter('quality', i),
		...extra,
	};
	if (this.getNodeParameter('source', i) === 'url') {
		const body = { ...qs, url: this.getNodeParameter('url', i) as string };
		return (await stemhubRequest.call(this, 'POST', '/v1/split', { body })).body as IDataObject;
	}
	const property = this.getNodeParameter('binaryPropertyName', i) as string;
	const binary = this.helpers.assertBinaryData(i, property);
	const data = await this.helpers.getBinaryDataBuffer(i, property);
	qs.filename = binary.fileName ?? 'audio';
	const audio = /^(audio|video)\//.test(binary.mimeType ?? '');
	const headers = { 'Content-Type': audio ? binary.mimeType : 'application/octet-stream' };
	return (await stemhubRequest.call(this, 'POST', '/v1/split', { qs, body: data, headers }))
		.body as IDataObject;
}

async function download(
	this: IExecuteFunctions,
	i: number,
	zip: boolean,
): Promise<INodeExecutionData> {
	const jobId = encodeURIComponent(this.getNodeParameter('jobId', i) as string);
	const path = zip
		? `/v1/jobs/${jobId}/stems.zip`
		: `/v1/jobs/${jobId}/stems/${encodeURIComponent(this.getNodeParameter('stem', i) as string)}`;
	const response = await stemhubRequest.call(this, 'GET', path, { binary: true });
	const headers = response.headers as IDataObject;
	const disposition = String(headers['content-disposition'] ?? '');
	const encoded = /filename\*=utf-8''([^;]+)/i.exec(disposition)?.[1];
	const named = encoded ? decodeURIComponent(encoded) : /filename="([^"]+)"/.exec(disposition)?.[1];
	const fileName = named ?? (zip ? `${jobId}.zip` : `${jobId}.audio`);
	const mimeType = String(headers['content-type'] ?? 'application/octet-stream');
	const field = this.getNodeParameter('outputBinaryPropertyName', i) as string;
	const data = await this.helpers.prepareBinaryData(
		Buffer.from(response.body as ArrayBuffer),
		fileName,
		mimeType,
	);
	return { json: { jobId, fileName }, binary: { [field]: data }, pairedItem: { item: i } };
}
