// Command alwrity-load measures the LLM gateway against the floor a bare
// reverse proxy sets. Each target runs as its own process so that its CPU
// time and memory can be read from /proc:
//
//	alwrity-load bench [flags]   start everything, run the alternated load, print a report
//	alwrity-load fake            an instant OpenAI-compatible upstream
//	alwrity-load proxy -target URL   a bare httputil.ReverseProxy
//	alwrity-load gateway-nometer -target URL   the gateway with a meter that does nothing
//
// See the Gateway section of docs/BENCHMARKS.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: alwrity-load bench|fake|proxy|gateway-nometer [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "bench":
		err = bench(os.Args[2:])
	case "fake":
		err = serveFake(os.Args[2:])
	case "proxy":
		err = serveProxy(os.Args[2:])
	case "gateway-nometer":
		err = serveNoMeter(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "alwrity-load:", err)
		os.Exit(1)
	}
}
