/*
 * harness.mjs: what chat.mjs and resume.mjs share with their Python side
 * (tests/test_browser.py, tests/test_client_js.py): the line protocol
 * ("@@ CMD" on stdout, "ok ..." or "error: ..." back on stdin), the
 * checks they print, and headless Chromium as both launch it.
 */
import readline from 'node:readline';

const answers = [];
let waiting = null;
readline.createInterface({ input: process.stdin }).on('line', (l) => {
	if (waiting) {
		const w = waiting;
		waiting = null;
		w(l);
	} else {
		answers.push(l);
	}
});

/* Ask the Python side for CMD (stop, start, kill); resolves with its
 * "ok ..." line, rejects on anything else or after 30 s. */
export function ask(cmd) {
	process.stdout.write('@@ ' + cmd + '\n');
	return new Promise((resolve, reject) => {
		const t = setTimeout(() => reject(new Error('no answer to ' +
		    cmd)), 30000);
		const got = (l) => {
			clearTimeout(t);
			if (l.startsWith('ok'))
				resolve(l);
			else
				reject(new Error(cmd + ': ' + l));
		};
		if (answers.length)
			got(answers.shift());
		else
			waiting = got;
	});
}

export function say(s) {
	process.stdout.write(s + '\n');
}

export function check(cond, what) {
	if (!cond)
		throw new Error('check failed: ' + what);
	say('ok: ' + what);
}

/* Headless Chromium at PATH; launch() gives every run a fresh,
 * temporary user-data dir. */
export async function launchChromium(path) {
	const { chromium } = await import('playwright-core');
	return chromium.launch({
		executablePath: path,
		args: ['--headless', '--no-sandbox', '--disable-gpu',
		    '--disable-quic', '--no-first-run',
		    '--disable-background-networking',
		    '--disable-component-update', '--disable-sync'],
		timeout: 30000
	});
}
