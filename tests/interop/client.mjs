// An end-to-end-encrypted exchange with matrix-js-sdk (the SDK behind
// Element) and its Rust crypto (WASM), against a Chappe homeserver.
//
// It logs in (or registers through the shared-secret admin endpoint),
// starts Rust crypto with an in-memory store, joins the given room or
// creates an encrypted one and invites the peer, waits for the peer to
// join, sends an encrypted message, and waits until a message of the peer
// decrypts. It exits 0 when it did, 1 with the reason otherwise, and 1 if
// the whole takes longer than --timeout seconds.
//
// Progress goes to standard output as lines `interop {json}` (the Go test
// tests/interop_test.go reads them); the SDK's warnings and the requests
// the server refused go to standard error.
//
//   node client.mjs --homeserver URL (--user NAME --password P | --register NAME --shared-secret S)
//                   --peer @user:server [--room !id] [--send TEXT] [--expect TEXT] [--timeout 60]
//
// Every option can also come from the environment: INTEROP_HOMESERVER,
// INTEROP_USER, INTEROP_PASSWORD, INTEROP_REGISTER, INTEROP_SHARED_SECRET,
// INTEROP_PEER, INTEROP_ROOM, INTEROP_SEND, INTEROP_EXPECT, INTEROP_TIMEOUT.
// INTEROP_DEBUG=1 shows the SDK's debug log.

import "./polyfill.mjs";

import { createHmac } from "node:crypto";
import { parseArgs } from "node:util";

import * as sdk from "matrix-js-sdk";
import { logger as globalLogger } from "matrix-js-sdk/lib/logger.js";

const names = ["homeserver", "user", "password", "register", "shared-secret", "peer", "room", "send", "expect", "timeout"];
const { values: argv } = parseArgs({
    options: Object.fromEntries(names.map((n) => [n, { type: "string" }])),
    strict: true,
});
const opt = (n) => argv[n] ?? process.env["INTEROP_" + n.toUpperCase().replace("-", "_")];

const debug = process.env.INTEROP_DEBUG === "1";
const homeserver = opt("homeserver");
const peer = opt("peer");
const timeoutS = Number(opt("timeout") ?? 60);
const sendText = opt("send") ?? "hello from matrix-js-sdk";
const expectText = opt("expect");

function report(event, fields = {}) {
    process.stdout.write("interop " + JSON.stringify({ event, ...fields }) + "\n");
}

function fail(message) {
    report("failed", { error: message });
    process.stderr.write("interop: FAILED: " + message + "\n");
    process.exit(1);
}

if (!homeserver) fail("no homeserver: pass --homeserver URL or set INTEROP_HOMESERVER");
if (!peer) fail("no peer: pass --peer @user:server or set INTEROP_PEER");
if (!(opt("user") && opt("password")) && !(opt("register") && opt("shared-secret"))) {
    fail("no credentials: pass --user and --password, or --register and --shared-secret");
}

let phase = "starting";
const timer = setTimeout(() => fail(`timed out after ${timeoutS}s while ${phase}`), timeoutS * 1000);

// The SDK logs through this: warnings and errors to standard error, the rest
// only with INTEROP_DEBUG=1.
const write =
    (level) =>
    (...msg) =>
        process.stderr.write(`js-sdk ${level}: ${msg.map((m) => (m instanceof Error ? m.stack : String(m))).join(" ")}\n`);
const quiet = () => {};
const logger = {
    trace: debug ? write("trace") : quiet,
    debug: debug ? write("debug") : quiet,
    info: debug ? write("info") : quiet,
    warn: write("warn"),
    error: write("error"),
    getChild: () => logger,
};
globalLogger.setLevel(debug ? "debug" : "warn");

// Every request the server answers with an error is shown: when the SDK
// works around one silently, this is where it can be seen.
async function loggingFetch(input, init) {
    const resp = await fetch(input, init);
    if (resp.status >= 400) {
        const url = new URL(input instanceof Request ? input.url : String(input));
        const body = await resp
            .clone()
            .text()
            .catch(() => "");
        process.stderr.write(`http: ${init?.method ?? "GET"} ${url.pathname} -> ${resp.status} ${body.slice(0, 300)}\n`);
    }
    return resp;
}

async function step(what, fn) {
    phase = what;
    try {
        return await fn();
    } catch (err) {
        const detail = err?.errcode ? `${err.errcode} (${err.httpStatus}): ${err.data?.error ?? err.message}` : (err?.stack ?? String(err));
        fail(`${what}: ${detail}`);
    }
}

async function waitUntil(what, cond, intervalMs = 100) {
    phase = "waiting for " + what;
    for (;;) {
        const ok = await cond();
        if (ok) return ok;
        await new Promise((r) => setTimeout(r, intervalMs));
    }
}

async function sharedSecretRegister(username, secret) {
    const url = new URL("/_synapse/admin/v1/register", homeserver);
    const nonceResp = await loggingFetch(url);
    if (!nonceResp.ok) throw new Error(`GET nonce: ${nonceResp.status} ${await nonceResp.text()}`);
    const { nonce } = await nonceResp.json();
    const password = "password-" + username;
    const mac = createHmac("sha1", secret)
        .update([nonce, username, password, "notadmin"].join("\0"))
        .digest("hex");
    const resp = await loggingFetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ nonce, username, password, admin: false, mac }),
    });
    if (!resp.ok) throw new Error(`POST register: ${resp.status} ${await resp.text()}`);
    const r = await resp.json();
    return { userId: r.user_id, accessToken: r.access_token, deviceId: r.device_id };
}

async function passwordLogin(user, password) {
    const tmp = sdk.createClient({ baseUrl: homeserver, fetchFn: loggingFetch, logger });
    const r = await tmp.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: "matrix-js-sdk interop",
    });
    return { userId: r.user_id, accessToken: r.access_token, deviceId: r.device_id };
}

const creds = await step("logging in", () =>
    opt("register") ? sharedSecretRegister(opt("register"), opt("shared-secret")) : passwordLogin(opt("user"), opt("password")),
);

const client = sdk.createClient({
    baseUrl: homeserver,
    userId: creds.userId,
    accessToken: creds.accessToken,
    deviceId: creds.deviceId,
    fetchFn: loggingFetch,
    logger,
});

await step("initRustCrypto", () => client.initRustCrypto({ useIndexedDB: false }));
const crypto = client.getCrypto();

await step("the first sync", async () => {
    const prepared = new Promise((resolve, reject) => {
        client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
            if (state === sdk.SyncState.Prepared || state === sdk.SyncState.Syncing) resolve();
            if (state === sdk.SyncState.Error) process.stderr.write(`interop: sync error: ${data?.error?.message ?? ""}\n`);
        });
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;
});

// The device's keys are on the server before anyone is told it is ready.
await waitUntil("the device keys to be uploaded", async () => {
    const r = await client.http.authedRequest(sdk.Method.Post, "/keys/query", undefined, {
        device_keys: { [creds.userId]: [] },
    });
    return Boolean(r.device_keys?.[creds.userId]?.[creds.deviceId]?.keys);
});

let roomId = opt("room");
if (roomId) {
    await step("joining " + roomId, () => client.joinRoom(roomId));
} else {
    roomId = await step("creating an encrypted room", async () => {
        const r = await client.createRoom({
            preset: sdk.Preset.PrivateChat,
            invite: [peer],
            initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
        });
        return r.room_id;
    });
}
report("room", { room_id: roomId, user_id: creds.userId, device_id: creds.deviceId });

await waitUntil(`${peer} to join ${roomId}`, () => client.getRoom(roomId)?.getMember(peer)?.membership === "join");
await waitUntil(`${roomId} to be encrypted for the SDK`, () => crypto.isEncryptionEnabledInRoom(roomId));
report("ready", { room_id: roomId, user_id: creds.userId, device_id: creds.deviceId });

const sent = await step("sending", () => client.sendTextMessage(roomId, sendText));
const onServer = await step("reading the sent event back", () => client.fetchRoomEvent(roomId, sent.event_id));
if (onServer.type !== "m.room.encrypted") fail(`the SDK sent ${sent.event_id} as ${onServer.type}, not m.room.encrypted`);
report("sent", { event_id: sent.event_id, body: sendText });

let lastFailure = "";
const got = await waitUntil(`a decryptable message from ${peer}` + (expectText ? ` saying ${JSON.stringify(expectText)}` : ""), () => {
    for (const ev of client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? []) {
        if (ev.getSender() !== peer || !ev.isEncrypted()) continue;
        if (ev.isDecryptionFailure()) {
            lastFailure = `${ev.getId()}: ${ev.decryptionFailureReason}`;
            continue;
        }
        if (ev.getType() === "m.room.message" && (!expectText || ev.getContent().body === expectText)) return ev;
    }
    if (lastFailure) phase = `waiting for a decryptable message from ${peer} (last failure ${lastFailure})`;
    return null;
});
report("decrypted", { event_id: got.getId(), sender: got.getSender(), body: got.getContent().body });

clearTimeout(timer);
client.stopClient();
process.exit(0);
