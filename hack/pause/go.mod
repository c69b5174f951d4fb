// Wrapper module: the pause binary of the local node's pod sandboxes (no dependencies).
module invsync.dev/hack/pause

go 1.24.0
