-- Argo CD health check for musepose.io/v1alpha1 Animation
-- (resource.customizations.health.musepose.io_Animation in argocd-cm).
--   Healthy      the video is written (phase Succeeded)
--   Degraded     the run failed for good (phase Failed); the message says what to fix
--   Suspended    spec.suspend holds it (phase Suspended)
--   Progressing  anything else, including a status older than the spec (observedGeneration)
-- Written for Argo CD's Lua 5.1 (gopher-lua): no goto, no integer division, no utf8.

local hs = {}

local function condition(status, wanted)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function text(status, fallback)
  local message = status.message
  if message == nil or message == "" then
    message = fallback
  end
  if status.reason ~= nil and status.reason ~= "" then
    return status.reason .. ": " .. message
  end
  return message
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to accept the Animation"
  return hs
end

local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

local phase = status.phase
if phase == nil then
  -- No phase: read the terminal conditions instead.
  if is_true(condition(status, "Failed")) or is_true(condition(status, "Stalled")) then
    phase = "Failed"
  elseif is_true(condition(status, "Succeeded")) then
    phase = "Succeeded"
  end
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  if status.output ~= nil and status.output.uri ~= nil then
    hs.message = "Video written to " .. status.output.uri
  else
    hs.message = text(status, "Video written")
  end
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = text(status, "The Animation failed")
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = text(status, "Suspended: set spec.suspend to false to go on")
else
  hs.status = "Progressing"
  local message = text(status, phase or "Pending")
  if status.progress ~= nil and status.progress.summary ~= nil and status.progress.summary ~= "" then
    message = message .. " (" .. status.progress.summary .. ")"
  end
  hs.message = message
end
return hs
