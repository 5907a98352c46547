import type {
	IAuthenticateGeneric,
	ICredentialTestRequest,
	ICredentialType,
	INodeProperties,
} from 'n8n-workflow';

export class StemhubApi implements ICredentialType {
	name = 'stemhubApi';

	displayName = 'Stemhub API';

	// the rule below mistakes a full URL for an n8n docs slug; community nodes link a URL
	// eslint-disable-next-line n8n-nodes-base/cred-class-field-documentation-url-miscased
	documentationUrl = 'https://github.com/stemhub/stemhub/tree/main/docs/n8n';

	properties: INodeProperties[] = [
		{
			displayName: 'Hub URL',
			name: 'hubUrl',
			type: 'string',
			default: 'http://127.0.0.1:8750',
			placeholder: 'https://stems.example.org',
			description: 'The address of your stemhub, as this n8n reaches it',
			required: true,
		},
		{
			displayName: 'API Key',
			name: 'apiKey',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description: 'A key made with "stemhub keys create" (sk_live_...)',
			required: true,
		},
		{
			displayName: 'Webhook Secret',
			name: 'webhookSecret',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description:
				'The key\'s webhook secret (whsec_...), printed by "stemhub keys create"; it signs per-job callbacks',
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				'X-API-Key': '={{$credentials.apiKey}}',
			},
		},
	};

	test: ICredentialTestRequest = {
		request: {
			baseURL: '={{$credentials.hubUrl.replace(/\\/+$/, "")}}',
			url: '/v1/jobs',
			qs: { limit: 1 },
		},
	};
}
