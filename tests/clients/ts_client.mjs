// Drives a toolkiln server with the TypeScript SDK's Client and prints one JSON report on stdout.
//
//   node ts_client.mjs --transport stdio|sse|http [--call NAME] [--args JSON] [--trigger NAME]
//                      (URL | -- COMMAND ARGS...)
//
// Lists tools, optionally calls one, and with --trigger calls that tool and waits (bounded) for
// notifications/tools/list_changed. Exit code 0 only when every step succeeded.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const LIST_CHANGED_DEADLINE_MS = 10_000;

function parseArgs(argv) {
  const options = { transport: "stdio", call: null, args: {}, trigger: null, target: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      options.target = argv.slice(i + 1);
      break;
    } else if (arg === "--transport") options.transport = argv[++i];
    else if (arg === "--call") options.call = argv[++i];
    else if (arg === "--args") options.args = JSON.parse(argv[++i]);
    else if (arg === "--trigger") options.trigger = argv[++i];
    else options.target.push(arg);
  }
  return options;
}

function makeTransport({ transport, target }) {
  if (transport === "stdio") {
    const [command, ...args] = target;
    return new StdioClientTransport({ command, args, stderr: "inherit" });
  }
  const url = new URL(target[0]);
  if (transport === "sse") return new SSEClientTransport(url);
  if (transport === "http") return new StreamableHTTPClientTransport(url);
  throw new Error(`unknown transport ${transport}`);
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const client = new Client({ name: "toolkiln-ts-e2e", version: "1.0.0" });
  let listChanged = 0;
  let onListChanged = () => {};
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    listChanged += 1;
    onListChanged();
  });
  const transport = makeTransport(options);
  // The client hands the negotiated version to the transport; stdio and SSE have no getter.
  let protocolVersion = null;
  const setProtocolVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (version) => {
    protocolVersion = version;
    setProtocolVersion?.(version);
  };
  await client.connect(transport);
  const report = {
    protocolVersion,
    serverName: client.getServerVersion()?.name ?? null,
    listChangedCapability: client.getServerCapabilities()?.tools?.listChanged ?? null,
  };
  const listed = await client.listTools();
  report.tools = listed.tools.map((tool) => tool.name);
  if (options.call) {
    report.result = await client.callTool({ name: options.call, arguments: options.args });
  }
  if (options.trigger) {
    const arrived = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no tools/list_changed")), LIST_CHANGED_DEADLINE_MS);
      onListChanged = () => {
        clearTimeout(timer);
        resolve();
      };
      if (listChanged > 0) onListChanged();
    });
    report.triggerResult = await client.callTool({ name: options.trigger, arguments: {} });
    await arrived;
    report.listChanged = listChanged;
  }
  await client.close();
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((error) => {
  process.stderr.write(`ts_client failed: ${error?.stack ?? error}\n`);
  process.exit(1);
});
