// Command roster is the service registry agent and its command-line client.
package main

import (
	"os"

	"github.com/rosterhq/roster/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
