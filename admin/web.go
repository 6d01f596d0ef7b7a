package admin

import "embed"

// dist is the page, built from web/ with Vite (npm run build in
// admin/web; scripts/admin-web.sh checks that it matches its sources).
//
//go:embed all:web/dist
var dist embed.FS
