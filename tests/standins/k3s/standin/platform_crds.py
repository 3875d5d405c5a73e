"""helm-controller CRD schemas (helm.cattle.io/v1 HelmChart, HelmChartConfig) for the K3S stand-in.

GENERATED from tests/schemas/helm.cattle.io_*.yaml (descriptions dropped) by
tests/unit/standins/test_standin_platform.py (run it as a script to rewrite this file);
a unit test fails when this copy and tests/schemas differ.
"""

import json

SCHEMAS = json.loads(r"""
{
 "helm.cattle.io/v1 HelmChart": {
  "properties": {
   "apiVersion": {
    "type": "string"
   },
   "kind": {
    "type": "string"
   },
   "metadata": {
    "type": "object"
   },
   "spec": {
    "properties": {
     "authPassCredentials": {
      "type": "boolean"
     },
     "authSecret": {
      "properties": {
       "name": {
        "default": "",
        "type": "string"
       }
      },
      "type": "object",
      "x-kubernetes-map-type": "atomic"
     },
     "backOffLimit": {
      "format": "int32",
      "type": "integer"
     },
     "bootstrap": {
      "type": "boolean"
     },
     "chart": {
      "type": "string"
     },
     "chartContent": {
      "type": "string"
     },
     "createNamespace": {
      "type": "boolean"
     },
     "dockerRegistrySecret": {
      "properties": {
       "name": {
        "default": "",
        "type": "string"
       }
      },
      "type": "object",
      "x-kubernetes-map-type": "atomic"
     },
     "driver": {
      "default": "secret",
      "enum": [
       "secret",
       "configmap"
      ],
      "type": "string",
      "x-kubernetes-validations": [
       {
        "message": "driver is immutable after creation",
        "optionalOldSelf": true,
        "rule": "!oldSelf.hasValue() || self == oldSelf.value()"
       }
      ]
     },
     "failurePolicy": {
      "default": "reinstall",
      "enum": [
       "abort",
       "reinstall",
       "retry"
      ],
      "type": "string"
     },
     "forceConflicts": {
      "type": "boolean"
     },
     "helmVersion": {
      "type": "string"
     },
     "insecureSkipTLSVerify": {
      "type": "boolean"
     },
     "jobImage": {
      "type": "string"
     },
     "plainHTTP": {
      "type": "boolean"
     },
     "podSecurityContext": {
      "properties": {
       "appArmorProfile": {
        "properties": {
         "localhostProfile": {
          "type": "string"
         },
         "type": {
          "type": "string"
         }
        },
        "required": [
         "type"
        ],
        "type": "object"
       },
       "fsGroup": {
        "format": "int64",
        "type": "integer"
       },
       "fsGroupChangePolicy": {
        "type": "string"
       },
       "runAsGroup": {
        "format": "int64",
        "type": "integer"
       },
       "runAsNonRoot": {
        "type": "boolean"
       },
       "runAsUser": {
        "format": "int64",
        "type": "integer"
       },
       "seLinuxChangePolicy": {
        "type": "string"
       },
       "seLinuxOptions": {
        "properties": {
         "level": {
          "type": "string"
         },
         "role": {
          "type": "string"
         },
         "type": {
          "type": "string"
         },
         "user": {
          "type": "string"
         }
        },
        "type": "object"
       },
       "seccompProfile": {
        "properties": {
         "localhostProfile": {
          "type": "string"
         },
         "type": {
          "type": "string"
         }
        },
        "required": [
         "type"
        ],
        "type": "object"
       },
       "supplementalGroups": {
        "items": {
         "format": "int64",
         "type": "integer"
        },
        "type": "array",
        "x-kubernetes-list-type": "atomic"
       },
       "supplementalGroupsPolicy": {
        "type": "string"
       },
       "sysctls": {
        "items": {
         "properties": {
          "name": {
           "type": "string"
          },
          "value": {
           "type": "string"
          }
         },
         "required": [
          "name",
          "value"
         ],
         "type": "object"
        },
        "type": "array",
        "x-kubernetes-list-type": "atomic"
       },
       "windowsOptions": {
        "properties": {
         "gmsaCredentialSpec": {
          "type": "string"
         },
         "gmsaCredentialSpecName": {
          "type": "string"
         },
         "hostProcess": {
          "type": "boolean"
         },
         "runAsUserName": {
          "type": "string"
         }
        },
        "type": "object"
       }
      },
      "type": "object"
     },
     "repo": {
      "type": "string"
     },
     "repoCA": {
      "type": "string"
     },
     "repoCAConfigMap": {
      "properties": {
       "name": {
        "default": "",
        "type": "string"
       }
      },
      "type": "object",
      "x-kubernetes-map-type": "atomic"
     },
     "securityContext": {
      "properties": {
       "allowPrivilegeEscalation": {
        "type": "boolean"
       },
       "appArmorProfile": {
        "properties": {
         "localhostProfile": {
          "type": "string"
         },
         "type": {
          "type": "string"
         }
        },
        "required": [
         "type"
        ],
        "type": "object"
       },
       "capabilities": {
        "properties": {
         "add": {
          "items": {
           "type": "string"
          },
          "type": "array",
          "x-kubernetes-list-type": "atomic"
         },
         "drop": {
          "items": {
           "type": "string"
          },
          "type": "array",
          "x-kubernetes-list-type": "atomic"
         }
        },
        "type": "object"
       },
       "privileged": {
        "type": "boolean"
       },
       "procMount": {
        "type": "string"
       },
       "readOnlyRootFilesystem": {
        "type": "boolean"
       },
       "runAsGroup": {
        "format": "int64",
        "type": "integer"
       },
       "runAsNonRoot": {
        "type": "boolean"
       },
       "runAsUser": {
        "format": "int64",
        "type": "integer"
       },
       "seLinuxOptions": {
        "properties": {
         "level": {
          "type": "string"
         },
         "role": {
          "type": "string"
         },
         "type": {
          "type": "string"
         },
         "user": {
          "type": "string"
         }
        },
        "type": "object"
       },
       "seccompProfile": {
        "properties": {
         "localhostProfile": {
          "type": "string"
         },
         "type": {
          "type": "string"
         }
        },
        "required": [
         "type"
        ],
        "type": "object"
       },
       "windowsOptions": {
        "properties": {
         "gmsaCredentialSpec": {
          "type": "string"
         },
         "gmsaCredentialSpecName": {
          "type": "string"
         },
         "hostProcess": {
          "type": "boolean"
         },
         "runAsUserName": {
          "type": "string"
         }
        },
        "type": "object"
       }
      },
      "type": "object"
     },
     "serverSide": {
      "enum": [
       "true",
       "false",
       "auto"
      ],
      "type": "string"
     },
     "set": {
      "additionalProperties": {
       "anyOf": [
        {
         "type": "integer"
        },
        {
         "type": "string"
        }
       ],
       "x-kubernetes-int-or-string": true
      },
      "type": "object"
     },
     "takeOwnership": {
      "type": "boolean"
     },
     "targetNamespace": {
      "type": "string"
     },
     "timeout": {
      "type": "string"
     },
     "values": {
      "x-kubernetes-preserve-unknown-fields": true
     },
     "valuesContent": {
      "type": "string"
     },
     "valuesSecrets": {
      "items": {
       "properties": {
        "ignoreUpdates": {
         "type": "boolean"
        },
        "keys": {
         "items": {
          "type": "string"
         },
         "type": "array"
        },
        "name": {
         "type": "string"
        }
       },
       "type": "object"
      },
      "type": "array"
     },
     "version": {
      "type": "string"
     }
    },
    "type": "object"
   },
   "status": {
    "properties": {
     "conditions": {
      "items": {
       "properties": {
        "message": {
         "type": "string"
        },
        "reason": {
         "type": "string"
        },
        "status": {
         "type": "string"
        },
        "type": {
         "type": "string"
        }
       },
       "required": [
        "status",
        "type"
       ],
       "type": "object"
      },
      "type": "array",
      "x-kubernetes-list-map-keys": [
       "type"
      ],
      "x-kubernetes-list-type": "map"
     },
     "jobName": {
      "type": "string"
     }
    },
    "type": "object"
   }
  },
  "type": "object"
 },
 "helm.cattle.io/v1 HelmChartConfig": {
  "properties": {
   "apiVersion": {
    "type": "string"
   },
   "kind": {
    "type": "string"
   },
   "metadata": {
    "type": "object"
   },
   "spec": {
    "properties": {
     "failurePolicy": {
      "default": "reinstall",
      "enum": [
       "abort",
       "reinstall",
       "retry"
      ],
      "type": "string"
     },
     "forceConflicts": {
      "type": "boolean"
     },
     "serverSide": {
      "enum": [
       "true",
       "false",
       "auto"
      ],
      "type": "string"
     },
     "values": {
      "x-kubernetes-preserve-unknown-fields": true
     },
     "valuesContent": {
      "type": "string"
     },
     "valuesSecrets": {
      "items": {
       "properties": {
        "ignoreUpdates": {
         "type": "boolean"
        },
        "keys": {
         "items": {
          "type": "string"
         },
         "type": "array"
        },
        "name": {
         "type": "string"
        }
       },
       "type": "object"
      },
      "type": "array"
     }
    },
    "type": "object"
   }
  },
  "type": "object"
 }
}
""")
