/** What a webhook handler answered through the express-like response n8n gives it. */
export interface Answered {
	status?: number;
	body?: unknown;
	headers?: Record<string, string>;
}

/** A response object (status, json, setHeader) that writes what it is given into `into`. */
export function recordingResponse(into: Answered) {
	const response = {
		status(code: number) {
			into.status = code;
			return response;
		},
		json(value: unknown) {
			into.body = value;
			return response;
		},
		setHeader(name: string, value: string) {
			into.headers = { ...into.headers, [name.toLowerCase()]: value };
			return response;
		},
	};
	return response;
}
