// Copies each node's SVG icon next to its compiled file (tsc copies only TypeScript).
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

for (const folder of ['nodes/Stemhub', 'nodes/StemhubTrigger']) {
	mkdirSync(join('dist', folder), { recursive: true });
	for (const name of readdirSync(folder).filter((file) => file.endsWith('.svg'))) {
		copyFileSync(join(folder, name), join('dist', folder, name));
	}
}
