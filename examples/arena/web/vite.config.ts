import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The SDK is used from its TypeScript sources, so nothing in clients/ts has
// to be built (or installed) before this page builds.
const sdk = fileURLToPath(new URL("../../../clients/ts/src/index.ts", import.meta.url));

export default defineConfig({
  // Relative asset URLs: the page works under any path the server mounts it at.
  base: "./",
  resolve: {
    alias: { "@guildkit/client": sdk },
    // The SDK's sources import @bufbuild/protobuf from outside this directory:
    // resolve it from here, one copy for the SDK and the generated code.
    dedupe: ["@bufbuild/protobuf"],
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // dist/ is committed (guild demo embeds it). Names without hashes keep
    // a rebuild of unchanged sources from changing any file.
    rolldownOptions: {
      output: {
        entryFileNames: "assets/[name].js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
  server: {
    // `npm run dev` with a demo running: proxy the gateway's WebSocket.
    // GUILD_DEMO is the demo's address, such as 127.0.0.1:8080.
    proxy: process.env.GUILD_DEMO
      ? { "/ws": { target: `ws://${process.env.GUILD_DEMO}`, ws: true } }
      : undefined,
  },
});
