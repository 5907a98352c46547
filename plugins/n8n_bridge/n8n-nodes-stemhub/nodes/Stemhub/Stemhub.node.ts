import type {
	IDataObject,
	IExecuteFunctions,
	INodeExecutionData,
	INodeType,
	INodeTypeDescription,
} from 'n8n-workflow';
import { NodeOperationError, sleep } from 'n8n-workflow';

import { stemhubRequest } from './GenericFunctions';

/** The longest the hub holds one split request open (it allows 55 s). */
const HUB_WAIT_S = 50;

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
					'Whether to output the finished job; otherwise the queued job is output at once (use the Stemhub Trigger node for long jobs)',
				displayOptions: { show: { operation: ['split'] } },
			},
			{
				displayName: 'Max Wait (Minutes)',
				name: 'maxWaitMinutes',
				type: 'number',
				typeOptions: { minValue: 1, maxValue: 60 },
				default: 10,
				description:
					'How long to wait before failing; the hub holds each request open, so the worker sleeps in between',
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
		const out: INodeExecutionData[] = [];
		for (let i = 0; i < items.length; i++) {
			try {
				const operation = this.getNodeParameter('operation', i) as string;
				if (operation === 'split') {
					out.push({ json: await split.call(this, i), pairedItem: { item: i } });
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
}

async function split(this: IExecuteFunctions, i: number): Promise<IDataObject> {
	const wait = this.getNodeParameter('waitForCompletion', i) as boolean;
	const qs: IDataObject = {
		stems: this.getNodeParameter('stems', i),
		output_format: this.getNodeParameter('outputFormat', i),
		quality: this.getNodeParameter('quality', i),
		wait: wait ? HUB_WAIT_S : 0,
	};
	let job: IDataObject;
	if (this.getNodeParameter('source', i) === 'url') {
		const body = { ...qs, url: this.getNodeParameter('url', i) as string };
		job = (await stemhubRequest.call(this, 'POST', '/v1/split', { body })).body as IDataObject;
	} else {
		const property = this.getNodeParameter('binaryPropertyName', i) as string;
		const binary = this.helpers.assertBinaryData(i, property);
		const data = await this.helpers.getBinaryDataBuffer(i, property);
		qs.filename = binary.fileName ?? 'audio';
		const audio = /^(audio|video)\//.test(binary.mimeType ?? '');
		const headers = { 'Content-Type': audio ? binary.mimeType : 'application/octet-stream' };
		job = (await stemhubRequest.call(this, 'POST', '/v1/split', { qs, body: data, headers }))
			.body as IDataObject;
	}
	if (!wait) return job;
	const deadline = Date.now() + (this.getNodeParameter('maxWaitMinutes', i) as number) * 60_000;
	while (!job.finished) {
		if (Date.now() > deadline) {
			throw new NodeOperationError(this.getNode(), `Job ${job.id} did not finish in time`, {
				description: 'Raise "Max Wait", or use the Stemhub Trigger node for long jobs',
				itemIndex: i,
			});
		}
		await sleep(2000);
		job = (await stemhubRequest.call(this, 'GET', `/v1/jobs/${job.id}`)).body as IDataObject;
	}
	if (job.status !== 'completed') {
		const error = (job.error ?? {}) as IDataObject;
		throw new NodeOperationError(
			this.getNode(),
			`The hub could not split the song: ${String(error.message ?? job.status)}`,
			{ description: `stemhub error ${String(error.code ?? job.status)}`, itemIndex: i },
		);
	}
	return job;
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
