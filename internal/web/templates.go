package web

import (
	"fmt"
	"html/template"
)

// pageNames are the page templates; each is parsed with layout.html.
var pageNames = []string{"signin", "dashboard", "details", "admin", "error"}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

type errorPage struct {
	page
	Status  int
	Message string
}
