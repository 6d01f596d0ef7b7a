import { defineConfig } from "vite";

export default defineConfig({
  // Relative asset URLs: the page works under any path the server mounts it at.
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // dist/ is committed (package admin embeds it). Names without hashes
    // keep a rebuild of unchanged sources from changing any file.
    rolldownOptions: {
      output: {
        entryFileNames: "assets/[name].js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
  server: {
    // `npm run dev` beside a running node: GUILD_ADMIN is its dashboard's
    // address, such as 127.0.0.1:9090.
    proxy: process.env.GUILD_ADMIN ? { "/api": `http://${process.env.GUILD_ADMIN}` } : undefined,
  },
});
