// Command coredns is CoreDNS with only the plugins the local node's cluster DNS needs (Service and
// Pod names from the API server), built from its pinned module for invsync's local node.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	"github.com/coredns/coredns/coremain"
)

func init() {
	// in CoreDNS's plugin.cfg order, which is the order a query passes through them
	dnsserver.Directives = []string{"bind", "errors", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
