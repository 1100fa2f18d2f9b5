package specschema

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Operation is one client-server API operation of the spec.
type Operation struct {
	File        string // spec file it is defined in, e.g. "room_state.yaml"
	Method      string // "GET", "PUT", ...
	Path        string // full path, e.g. "/_matrix/client/v3/rooms/{roomId}/state"
	FilePath    string // the path as the file writes it, without the base path
	OperationID string
	Summary     string
	Deprecated  bool
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options"}

// Operations reads every operation of the client-server API from a
// matrix-spec checkout, files in name order and operations in file order
// (the order the spec's own pages use).
func Operations(specDir string) ([]Operation, error) {
	return OperationsOf(specDir, ClientServerDir)
}

// OperationsOf reads every operation of one API (ClientServerDir,
// ServerServerDir) as Operations does.
func OperationsOf(specDir, apiDir string) ([]Operation, error) {
	files, err := filepath.Glob(filepath.Join(specDir, apiDir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("list spec files: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no OpenAPI files in %s", filepath.Join(specDir, apiDir))
	}
	slices.Sort(files)
	var ops []Operation
	for _, f := range files {
		fileOps, err := fileOperations(f)
		if err != nil {
			return nil, err
		}
		ops = append(ops, fileOps...)
	}
	return ops, nil
}

// openAPIFile is the part of an OpenAPI file the operation list needs.
// Paths stay a node so that their order survives.
type openAPIFile struct {
	Servers []struct {
		Variables struct {
			BasePath struct {
				Default string `yaml:"default"`
			} `yaml:"basePath"`
		} `yaml:"variables"`
	} `yaml:"servers"`
	Paths yaml.Node `yaml:"paths"`
}

type openAPIOperation struct {
	OperationID string `yaml:"operationId"`
	Summary     string `yaml:"summary"`
	Deprecated  bool   `yaml:"deprecated"`
}

func fileOperations(path string) ([]Operation, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var doc openAPIFile
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	base := ""
	if len(doc.Servers) > 0 {
		base = strings.TrimSuffix(doc.Servers[0].Variables.BasePath.Default, "/")
	}
	var ops []Operation
	paths := doc.Paths.Content
	for i := 0; i+1 < len(paths); i += 2 {
		// The spec gives a second operation on the same path a trailing
		// space ("/rooms/{roomId}/invite "), as YAML keys must differ.
		p, item := strings.TrimSpace(paths[i].Value), paths[i+1]
		for j := 0; j+1 < len(item.Content); j += 2 {
			method := item.Content[j].Value
			if !slices.Contains(httpMethods, method) {
				continue // path-level parameters, summary...
			}
			var o openAPIOperation
			if err := item.Content[j+1].Decode(&o); err != nil {
				return nil, fmt.Errorf("parse %s %s %s: %w", path, method, p, err)
			}
			ops = append(ops, Operation{
				File:        filepath.Base(path),
				Method:      strings.ToUpper(method),
				Path:        base + p,
				FilePath:    p,
				OperationID: o.OperationID,
				Summary:     o.Summary,
				Deprecated:  o.Deprecated,
			})
		}
	}
	return ops, nil
}
