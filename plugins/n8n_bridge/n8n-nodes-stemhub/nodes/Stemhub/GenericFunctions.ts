import type {
	IDataObject,
	IExecuteFunctions,
	IHookFunctions,
	IHttpRequestMethods,
	IHttpRequestOptions,
	IN8nHttpFullResponse,
	IWebhookFunctions,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError } from 'n8n-workflow';

type Context = IExecuteFunctions | IHookFunctions | IWebhookFunctions;

export interface HubRequest {
	qs?: IDataObject;
	body?: IDataObject | Buffer;
	headers?: IDataObject;
	binary?: boolean;
}

/** The hub's base URL from the credential, without a trailing slash. */
export async function hubUrl(context: Context): Promise<string> {
	const credentials = await context.getCredentials('stemhubApi');
	return String(credentials.hubUrl).replace(/\/+$/, '');
}

function hubError(body: unknown): { message: string; code?: string } {
	let parsed: unknown = body;
	const text = Buffer.isBuffer(body) ? body.toString('utf8') : body;
	if (typeof text === 'string') {
		try {
			parsed = JSON.parse(text);
		} catch {
			return { message: text.slice(0, 300) || 'The hub refused the request' };
		}
	}
	const error = (parsed as { error?: { message?: string; code?: string } })?.error;
	return { message: error?.message ?? 'The hub refused the request', code: error?.code };
}

/**
 * One request to the hub with the credential's API key. A refusal becomes a
 * NodeApiError carrying the hub's own message and code, never a bare status line.
 */
export async function stemhubRequest(
	this: Context,
	method: IHttpRequestMethods,
	path: string,
	request: HubRequest = {},
): Promise<IN8nHttpFullResponse> {
	const options: IHttpRequestOptions = {
		method,
		url: `${await hubUrl(this)}${path}`,
		qs: request.qs,
		headers: request.headers,
		body: request.body,
		json: !request.binary && !Buffer.isBuffer(request.body),
		returnFullResponse: true,
		ignoreHttpStatusErrors: true,
		encoding: request.binary ? 'arraybuffer' : undefined,
	};
	let response: IN8nHttpFullResponse;
	try {
		response = (await this.helpers.httpRequestWithAuthentication.call(
			this,
			'stemhubApi',
			options,
		)) as IN8nHttpFullResponse;
	} catch (error) {
		throw new NodeApiError(this.getNode(), error as JsonObject, {
			message: `The hub at ${options.url} could not be reached`,
		});
	}
	if (response.statusCode >= 400) {
		const { message, code } = hubError(response.body);
		throw new NodeApiError(this.getNode(), { error: { message, code } } as JsonObject, {
			message,
			description: code ? `stemhub error ${code}` : undefined,
			httpCode: String(response.statusCode),
		});
	}
	return response;
}
